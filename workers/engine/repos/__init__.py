"""Training scenarios from code repositories, as a library (issue 10). Knows nothing of Django.

Sources (local path, folder of repositories, git URL, uploaded archive) → analysis (languages, LOC,
lizard complexity, components, history, license) → offline generators with exact provenance → optional
teacher model → incremental regeneration → the first seed's output bundle. The sources app
(apps/sources) stores and schedules; the contract is /work/notes/repos-engine.md.
"""
from workers.engine.repos.analysis import analyze
from workers.engine.repos.errors import RepoError
from workers.engine.repos.files import FileEntry, FileListing, SourceFile, list_files, load_snapshot, read_text
from workers.engine.repos.generate import GenerateOptions, GenerationResult, generate
from workers.engine.repos.generators import (CATEGORIES, COMPLEXITIES, DEFAULT_GENERATORS, GENERATORS,
                                             TASK_CATEGORIES, parse_file_blocks)
from workers.engine.repos.output import bundle, report, statistics, together_lines, write_bundle
from workers.engine.repos.sandbox import CommandResult, SandboxLimits, run_command
from workers.engine.repos.archives import ArchiveLimits, unpack_archive
from workers.engine.repos.sources import RepoInfo, clone, discover, open_repo, update
from workers.engine.repos.teacher import TeacherConfig, TeacherResult, enrich, estimate_teacher

__all__ = [
    "RepoError", "RepoInfo", "ArchiveLimits", "open_repo", "discover", "clone", "update", "unpack_archive",
    "FileEntry", "FileListing", "SourceFile", "list_files", "load_snapshot", "read_text", "analyze",
    "GenerateOptions", "GenerationResult", "generate", "GENERATORS", "DEFAULT_GENERATORS", "CATEGORIES",
    "COMPLEXITIES", "TASK_CATEGORIES", "parse_file_blocks", "SandboxLimits", "CommandResult", "run_command",
    "TeacherConfig", "TeacherResult", "enrich", "estimate_teacher", "bundle", "report", "statistics",
    "together_lines", "write_bundle",
]
