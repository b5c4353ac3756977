"""The offline generators, by stable name (the order is the round-robin order of selection)."""
from __future__ import annotations

from workers.engine.repos.generators.base import CATEGORIES, COMPLEXITIES, parse_file_blocks
from workers.engine.repos.generators.code import ConfigGenerator, DocstringGenerator, FimGenerator
from workers.engine.repos.generators.commits import CommitGenerator
from workers.engine.repos.generators.docs import DocsQAGenerator
from workers.engine.repos.generators.mutation import MutationGenerator
from workers.engine.repos.generators.pairs import ImplToTestsGenerator, TestsToImplGenerator
from workers.engine.repos.generators.tasks import TASK_CATEGORIES, TaskGenerator

REGISTRY = {g.name: g for g in (DocstringGenerator(), FimGenerator(), CommitGenerator(), TestsToImplGenerator(),
                                ImplToTestsGenerator(), MutationGenerator(), DocsQAGenerator(), TaskGenerator(),
                                ConfigGenerator())}
GENERATORS = tuple(REGISTRY)
DEFAULT_GENERATORS = GENERATORS

__all__ = ["REGISTRY", "GENERATORS", "DEFAULT_GENERATORS", "CATEGORIES", "COMPLEXITIES", "TASK_CATEGORIES",
           "parse_file_blocks"]
