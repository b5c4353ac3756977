"""The tool registry (issue 12): tools found by scanning dataset versions, defined by admins, or shipped with the
hub; their JSON schemas drive dataset validation, tool-call evaluation, documentation and deploy bundles.

Public entry points (import from these modules; this package imports nothing itself, so that the scenario reader
can read `builtin` at parse time without Django):
- services: tool_registry_ensure_builtins, tool_create, tool_update, tool_delete, tool_scan
- selectors: tool_list, tool_get, tool_registry_schemas, tool_registry_export, tool_docs_markdown,
  tool_call_problems
- builtin: BUILTIN_TOOLS, CALL_FORMATS, example_call;  validate: schema_problems, argument_problems
"""
