"""/api routes of the tool registry: list, define, edit and delete tools (writes: admins only), scan a dataset
version for tool calls, and the generated markdown documentation. Parses input, calls a selector or a service,
renders; every status an operation returns is declared (apps.core.schemas)."""
from __future__ import annotations

from django.http import HttpResponse
from ninja import Router

from apps.core.schemas import responses
from apps.registry.tools import selectors, services
from apps.registry.tools.schemas import ScanIn, ScanOut, ToolIn, ToolName, ToolOut, ToolPatch

router = Router(tags=["tools"])


@router.get("/tools", response=responses({200: list[ToolOut]}, inputs=False))
def tool_list(request):
    """Every tool in the registry (builtin, admin-defined, found by scans), by name."""
    return [selectors.tool_as_dict(t) for t in selectors.tool_list()]


@router.post("/tools", response=responses({201: ToolOut}, body=True))
def tool_create(request, payload: ToolIn):
    """Define a tool with a JSON schema of its arguments (admins only). A bad name, or a schema that is not a JSON
    object schema, is a 422 naming the field (`parameters.properties.<arg>.type`, ...)."""
    tool = services.tool_create(actor=request.auth, name=payload.name, description=payload.description,
                                parameters=payload.parameters, call_format=payload.call_format)
    return 201, selectors.tool_as_dict(tool)


@router.get("/tools/docs.md", response=responses({200: None}, inputs=False))
def tool_docs(request):
    """Markdown documentation of every tool (text/markdown): call format with an example call, parameters from
    the schema, what scans observed."""
    resp = HttpResponse(selectors.tool_docs_markdown(), content_type="text/markdown; charset=utf-8")
    resp["Content-Disposition"] = 'attachment; filename="tools.md"'
    return resp


@router.post("/tools/scan", response=responses({200: ScanOut}, body=True))
def tool_scan(request, payload: ScanIn):
    """Scan a ready dataset version's examples for tool calls (admins only): OpenAI `tool_calls`, Hermes
    `<tool_call>` blocks and `[name: args]` in assistant text. New names become tools (origin `scan`, schema
    inferred); every tool seen gets its counts, argument shapes and examples. Scanning a version again replaces
    its figures (no double counting)."""
    return services.tool_scan(actor=request.auth, dataset_version_id=payload.dataset_version_id)


@router.get("/tools/{name}", response=responses({200: ToolOut}, 404))
def tool_detail(request, name: ToolName):
    return selectors.tool_as_dict(selectors.tool_get(name))


@router.patch("/tools/{name}", response=responses({200: ToolOut}, 404, body=True))
def tool_update(request, name: ToolName, payload: ToolPatch):
    """Change the fields sent (admins only); the tool becomes origin `admin` (scans no longer touch its schema)."""
    changes = {k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None}
    tool = services.tool_update(actor=request.auth, name=name, **changes)
    return selectors.tool_as_dict(tool)


@router.delete("/tools/{name}", response=responses({204: None}, 404, 409, write=True))
def tool_delete(request, name: ToolName):
    """Remove a tool (admins only). A builtin tool cannot be deleted (409); deleting an admin's edit of a builtin
    tool brings back its builtin definition."""
    services.tool_delete(actor=request.auth, name=name)
    return 204, None
