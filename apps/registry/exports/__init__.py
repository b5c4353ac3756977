"""Exports of a model version (issue 12): the adapter folder, merged full weights, or a GGUF file, each made by a
job ("registry.export", apps/registry/jobs.py; actor workers.exports.export_model_version on the `gpu` queue) and
checked against its source version. Modules: formats (the one table of formats and quantizations), services
(create, delete, the serving manifest's gguf_path), run (the job's body), checks (prompts, thresholds, comparison),
selectors (reads, the API shape, downloads), api (/api), forms + views (pages), serving (a GGUF for every deployed
version) and llamacpp_job (the "llamacpp.build" job). Import the submodules."""
