"""The command bar (Ctrl-K on every page) and POST /api/commands/parse: plain-language commands such as
"train demo with lr 1e-5 and 3 epochs", parsed deterministically (parser.py), resolved for the user
(services.py, actions.py, deploys.py) into the /api call that performs them after a confirmation."""
