"""Every write of the arena app, by concern: `arenas` (create, cancel, close), `generation` (the generation
job), `judge` (the judge model's verdicts), `queue` (blind voting: next, vote, skip), `export` (votes to a
preference dataset, a DPO run on it); `targets` resolves what an arena calls, `calling` calls it."""
from apps.arena.services.arenas import arena_cancel, arena_close, arena_create  # noqa: F401
from apps.arena.services.export import arena_dpo_start, arena_export, preference_rows  # noqa: F401
from apps.arena.services.generation import arena_generate_process, matches_create  # noqa: F401
from apps.arena.services.judge import judge_process, judge_start, parse_verdict  # noqa: F401
from apps.arena.services.queue import arena_next, match_skip, vote_cast  # noqa: F401
