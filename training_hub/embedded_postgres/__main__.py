"""`python -m training_hub.embedded_postgres start|stop|url`: the embedded PostgreSQL of HUB_DATA_DIR by
hand (start: run it until Ctrl-C; url: its libpq URL, for psql)."""
from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from training_hub.embedded_postgres import ensure_running, stop, url


def main() -> None:
    parser = argparse.ArgumentParser(description="The embedded PostgreSQL of HUB_DATA_DIR.")
    parser.add_argument("action", choices=["start", "stop", "url"], help="start: run it until Ctrl-C")
    args = parser.parse_args()
    data = Path(os.environ.get("HUB_DATA_DIR") or Path(__file__).resolve().parents[2] / "var").resolve() / "postgres"
    if args.action == "url":
        print(url(data))
    elif args.action == "stop":
        print("stopped" if stop(data) else "not running")
    else:
        print(ensure_running(data), flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover - manual use
    main()
