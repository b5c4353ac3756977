"""The PostgreSQL engine, plus: make sure the embedded server runs before each new connection.

`ensure_running` is cheap once this process is registered and the server runs (a read of postmaster.pid),
so every process (manage.py commands, web, workers, pytest) works with nothing else started, and a server
that was stopped meanwhile is started again on the next connection.

The test database is dropped `WITH (FORCE)`: a connection a test left open in another thread would
otherwise make the drop fail at the end of the session (SQLite's in-memory database never noticed them).
"""
from __future__ import annotations

from django.db.backends.postgresql import base as postgresql
from django.db.backends.postgresql.creation import DatabaseCreation as PostgresCreation

from training_hub import embedded_postgres


class DatabaseCreation(PostgresCreation):
    def _destroy_test_db(self, test_database_name, verbosity):
        self.connection.close_pool()
        with self._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE {self.connection.ops.quote_name(test_database_name)} WITH (FORCE)")


class DatabaseWrapper(postgresql.DatabaseWrapper):
    creation_class = DatabaseCreation

    def get_new_connection(self, conn_params):
        embedded_postgres.ensure_running(self.settings_dict["EMBEDDED_PGDATA"],
                                         durable=self.settings_dict.get("EMBEDDED_DURABLE", True))
        return super().get_new_connection(conn_params)
