"""Deploy bundles of an export (issue 12, part 3): one zip with the model files, `deployment_config.json`, the
tool registry (`tools.json`, `TOOLS.md`), integration examples, `test_results.json` and a model card.

Modules: config (the one table of deployment settings: bounds, defaults, validation), facts (what a bundle says,
read from the ORM as plain data), render (facts -> the text files), build (the zip on disk), services
(bundle_create, bundle_build), selectors, kind (job kind "registry.bundle"), schemas / api (/api), forms / views
(the fragment on the export page). Import the submodules."""
