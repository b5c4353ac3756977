"""`hub.commands`: plain-language commands ("train demo with lr 1e-5 and 3 epochs"). The hub's parser
(POST /api/commands/parse) turns the text into a plan — an action, a summary, the parameters and the /api call
that would carry it out (`allowed`, `missing`, `problems`, `suggestions` say what stands in the way) — and nothing
runs until `perform(plan)` is called with that plan."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub_sdk.errors import HubError, NotFound
from hub_sdk.types import CommandPlan

if TYPE_CHECKING:
    from hub_sdk.client import Hub

PARSE_PATH = "/api/commands/parse"


class CommandsUnavailable(HubError):
    """This hub has no command parser (an older hub: /api/commands/parse answers 404)."""


class Commands:
    def __init__(self, hub: "Hub"):
        self._hub = hub

    def parse(self, text: str) -> CommandPlan:
        try:
            return self._hub.request("POST", PARSE_PATH, json={"text": text})
        except NotFound as exc:
            raise CommandsUnavailable(
                f"This hub ({self._hub.url}) does not understand plain-language commands yet: {PARSE_PATH} is not "
                "there. Use the specific commands instead (`hub --help`).", status=404, code="no_parser") from exc
        except HubError as exc:
            if exc.status == 405:
                raise CommandsUnavailable(f"This hub ({self._hub.url}) has no {PARSE_PATH}.", status=405,
                                          code="no_parser") from exc
            raise

    def perform(self, plan: CommandPlan) -> Any:
        """Carry out a parsed plan: the /api call it names (only /api paths are sent)."""
        api = plan.get("api") or None
        if not api:
            raise HubError(f"Nothing to do for {plan.get('action') or 'this command'}: the hub gave no API call.",
                           code="nothing_to_do")
        method, path = str(api.get("method") or "GET").upper(), str(api.get("path") or "")
        if not path.startswith("/api/") or method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise HubError(f"Refusing to send {method} {path}: a command may only call the hub's /api.",
                           code="bad_plan")
        body = api.get("body")
        return self._hub.request(method, path, json=body if method != "GET" else None)
