"""The bundled OpenAI-compatible inference server (Starlette + uvicorn, no Django).

`python -m workers.inference` serves the model versions registered under
$HUB_ARTIFACT_ROOT/models/mv-<id>/hub_model.json. A vLLM server can replace it: the proxy
speaks plain OpenAI HTTP to whatever HUB_INFERENCE_URL points at.
"""
