"""/api/commands: the command bar's parser for programs (`hub do "…"` calls it). POST /api/commands/parse
{text} answers what the command would do and the exact /api request that does it; nothing runs on parse: the
client performs `api` after its user confirms, and the service behind that request checks permissions again.
422 for an empty text (or one with a NUL byte, or over 1000 characters)."""
from __future__ import annotations

from ninja import Router

from apps.commands.schemas import CommandOut, ParseIn
from apps.commands.services import command_parse
from apps.core.schemas import responses

router = Router(tags=["commands"])


@router.post("/parse", response=responses({200: CommandOut}, body=True))
def parse(request, payload: ParseIn):
    """Understand a plain-language command: generate, train, check status, deploy, roll back, configure the
    proxy, start a review, cancel a run. Names are resolved for the caller; an unknown command gets
    suggestions."""
    return command_parse(user=request.auth, text=payload.text)
