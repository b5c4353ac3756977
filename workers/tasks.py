"""Discovered by django_dramatiq's `rundramatiq` (and dramatiq-crontab's `crontab`): importing this
registers every actor and the periodic schedule."""
from workers import datasets, keys, periodic, proxy, together, traffic, training  # noqa: F401
from workers import sources  # noqa: F401  (code sources: analyses, scenario generations)
from workers import monitoring  # noqa: F401  (roll-ups, worker health, alerts: every minute)
from workers import review  # noqa: F401  (team review: result versions of review tasks)
from workers import arena  # noqa: F401  (blind arenas: generation, judge)
from workers import experiments  # noqa: F401  (experiments and canaries: the monitor every minute, webhooks)
from workers import registry_vllm  # noqa: F401  (LoRA adapters on a vLLM inference server: after deploys, every minute)
from workers import exports  # noqa: F401  (model exports: adapter, merged, GGUF, with round-trip checks)
from workers import bundles  # noqa: F401  (deploy bundles: the zip of an export with config, tools, examples)
from workers import llamacpp  # noqa: F401  (compile the pinned llama.cpp on the default queue: GGUF exports, serving)
from workers import evaluations  # noqa: F401  (reward-based evaluations of model versions: answers scored per component)
