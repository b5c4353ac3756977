"""`python -m workers.inference`: serve registered model versions over OpenAI-compatible HTTP."""
from __future__ import annotations

import logging

import uvicorn
from django.core.exceptions import ImproperlyConfigured

from workers.inference.config import InferenceConfig
from workers.inference.server import create_app


def main() -> None:
    try:
        cfg = InferenceConfig.from_env()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"inference: bad configuration: {exc}") from None
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s inference: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per llama-server call otherwise
    logging.getLogger("inference").info("serving %s/models on http://%s:%d/v1", cfg.artifact_root, cfg.host, cfg.port)
    app = create_app(artifact_root=cfg.artifact_root, max_loaded=cfg.max_loaded, model_cache=cfg.model_cache,
                     engine_mode=cfg.engine, llama_threads=cfg.threads, llama_ctx=cfg.llama_ctx,
                     llama_parallel=cfg.llama_parallel)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
