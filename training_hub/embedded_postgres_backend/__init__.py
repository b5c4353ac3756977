"""Django database engine for the embedded PostgreSQL (see training_hub/embedded_postgres.py)."""
