"""Sources: register a local path, a git URL or an uploaded archive (one or several repositories), discover
the repositories in a folder, edit component rules, delete, re-scan, and the first-run demo source.

Contract: `source_create` checks everything before it writes a row — the path is a git repository with a
commit, the URL clones (within HUB_SOURCE_CLONE_TIMEOUT_S; a clear `location` error when the network is
unreachable), the archive unpacks (no path traversal, no symlink pointing outside, within the size limits) —
and then writes the Source, its SourceRepos and rules in one transaction. Clones and archives live under
ARTIFACT_ROOT/sources/<uuid>/; when anything fails that folder is removed, so nothing is left half-made.
Engine errors (`workers.engine.repos.RepoError`) become field errors (`location`, `archive`, `repos`) with
the engine's code.

Permissions: admins and members may create sources (reviewers may not); a member sees and changes only the
sources they own, an admin all. Members may register a local path only under HUB_SOURCE_ROOTS (or the hub's
own checkout, the demo); admins any path.
"""
from __future__ import annotations

import logging
import re
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import Conflict, NotFound, PayloadTooLarge, PermissionDenied, ValidationFailed
from apps.sources import conf
from apps.sources.models import Analysis, ComponentRule, Generation, JobStatus, Source, SourceRepo
from workers.engine import repos as engine

log = logging.getLogger(__name__)

MAX_RULES = 50
MAX_PLUGINS = 100
_URL_SCHEMES = ("https", "http", "ssh", "git")
_SCP_URL = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)

# engine error code -> the form field it belongs to
_FIELD_OF = {
    "path_not_found": "location", "not_a_git_repo": "location", "empty_repo": "location",
    "unknown_commit": "location", "invalid_url": "location", "network_unavailable": "location",
    "clone_timeout": "location", "clone_failed": "location",
}


def repo_error(exc, *, field: str | None = None) -> ValidationFailed:
    """A RepoError as a 422 field error carrying the engine's code."""
    code = getattr(exc, "code", "repo_error")
    field = field or _FIELD_OF.get(code) or ("archive" if code.startswith("archive_") else None)
    message = getattr(exc, "message", None) or str(exc)
    return ValidationFailed(message, field=field, code=code)


# -- permissions ------------------------------------------------------------------------------------------
def is_admin(user) -> bool:
    return bool(user is not None and getattr(user, "is_hub_admin", False))


def can_manage(user, source: Source) -> bool:
    """May `user` see and change `source`? Its owner or a hub admin."""
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and (source.owner_id == user.pk or is_admin(user)))


def can_create(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and (is_admin(user) or getattr(user, "role", "") == "member"))


def require_creator(user) -> None:
    if user is None or not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Sign in first.")
    if not can_create(user):
        raise PermissionDenied("Only admins and members can add code sources.")


def managed_source(user, source_id: int, *, lock: bool = False) -> Source:
    """The source, when `user` may manage it (404 otherwise: a member never learns of others' sources)."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise NotFound("No such source.")
    qs = Source.objects.select_related("owner", "dataset")
    if lock:
        qs = qs.select_for_update(of=("self",))
    source = qs.filter(pk=source_id).first()
    if source is None or not can_manage(user, source):
        raise NotFound("No such source.")
    return source


# -- locations --------------------------------------------------------------------------------------------
def repo_path(repo: SourceRepo) -> Path:
    """The repository's work tree on disk (clones and archives are stored relative to ARTIFACT_ROOT)."""
    p = Path(repo.path)
    return p if p.is_absolute() else conf.sources_root().parent / p


def _check_text(value, field: str, *, max_len: int, required: bool = False, what: str = "value") -> str:
    value = "" if value is None else str(value)
    if "\x00" in value:
        raise ValidationFailed(f"The {what} must not contain NUL bytes.", field=field)
    value = value.strip()
    if required and not value:
        raise ValidationFailed(f"Give the {what}.", field=field)
    if len(value) > max_len:
        raise ValidationFailed(f"The {what} must be at most {max_len} characters.", field=field)
    return value


def _local_path(user, raw, *, field: str = "location") -> Path:
    text = _check_text(raw, field, max_len=2000, required=True, what="folder path")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise ValidationFailed("Give an absolute path (it is read on the hub's machine).", field=field)
    try:
        path = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ValidationFailed(f"The path cannot be read: {exc}", field=field) from None
    if not is_admin(user):
        allowed = [conf.hub_checkout(), *conf.source_roots()]
        if not any(path == root or root in path.parents for root in allowed):
            raise PermissionDenied(
                "Members may register local paths only under the folders an admin allowed (HUB_SOURCE_ROOTS); "
                "use a git URL or upload an archive instead.", field=field)
    if not path.exists():
        raise ValidationFailed(f"Folder not found: {path}", field=field, code="path_not_found")
    if not path.is_dir():
        raise ValidationFailed(f"{path} is a file, not a folder.", field=field, code="path_not_found")
    return path


def check_url(raw, *, field: str = "location") -> str:
    url = _check_text(raw, field, max_len=2000, required=True, what="git URL")
    if _SCP_URL.match(url):
        return url
    parts = urlsplit(url)
    if parts.scheme not in _URL_SCHEMES or not parts.netloc:
        raise ValidationFailed(f"Give a git URL (https://, http://, ssh://, git:// or user@host:path), not "
                               f"{url[:80]!r}. A folder on this machine is a local path source.", field=field,
                               code="invalid_url")
    if any(c.isspace() for c in url):
        raise ValidationFailed("A git URL has no spaces.", field=field, code="invalid_url")
    return url


def location_key(kind: str, location: str) -> str:
    """The normalized location: how the CLI recognises "the same source" (the same path or URL)."""
    if kind == Source.Kind.URL:
        key = location.strip().rstrip("/")
        key = key[:-4] if key.endswith(".git") else key
        parts = urlsplit(key)
        if parts.scheme and parts.netloc:
            key = f"{parts.scheme}://{parts.netloc.lower()}{parts.path}"
        return f"url:{key}"
    return f"{kind}:{location}"


def _url_name(url: str) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    tail = tail[:-4] if tail.endswith(".git") else tail
    return tail or "repository"


def _unique(name: str, taken: set[str]) -> str:
    base = (name or "repository")[:190]
    out, n = base, 2
    while out in taken:
        out, n = f"{base}-{n}", n + 1
    taken.add(out)
    return out


# -- component rules ----------------------------------------------------------------------------------------
_RULE_LINE = re.compile(r"^\s*(?P<name>[^:=]+?)\s*[:=]\s*(?P<spec>.+?)\s*$")


def parse_rules(raw) -> list[dict]:
    """Component rules from a list of {name, glob?, regex?} or text, one per line:
    `actions: glob src/actions/**` / `services: regex class \\w+Service` / `actions: src/actions/**` (a glob).
    Field errors under `rules`."""
    if raw in (None, "", []):
        return []
    items: list[dict] = []
    if isinstance(raw, str):
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = _RULE_LINE.match(line)
            if not m:
                raise ValidationFailed(f"Rule on line {n}: write `name: glob PATTERN` or `name: regex PATTERN`.",
                                       field="rules")
            spec = m.group("spec")
            word, _, rest = spec.partition(" ")
            if word in ("glob", "regex") and rest.strip():
                items.append({"name": m.group("name"), word: rest.strip()})
            else:
                items.append({"name": m.group("name"), "glob": spec})
    elif isinstance(raw, (list, tuple)):
        items = [dict(r) if isinstance(r, dict) else {"bad": r} for r in raw]
    else:
        raise ValidationFailed("Rules are a list of {name, glob, regex}.", field="rules")
    if len(items) > MAX_RULES:
        raise ValidationFailed(f"At most {MAX_RULES} component rules.", field="rules")
    out, names = [], set()
    for i, r in enumerate(items):
        if "bad" in r or not isinstance(r.get("name", ""), str):
            raise ValidationFailed(f"Rule {i + 1} is not {{name, glob, regex}}.", field="rules")
        name = _check_text(r.get("name"), "rules", max_len=100, required=True, what=f"name of rule {i + 1}")
        glob = _check_text(r.get("glob"), "rules", max_len=500, what=f"glob of rule {name!r}")
        regex = _check_text(r.get("regex"), "rules", max_len=500, what=f"regex of rule {name!r}")
        if not glob and not regex:
            raise ValidationFailed(f"Rule {name!r} needs a glob (on the path) or a regex (on the content).",
                                   field="rules")
        if regex:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValidationFailed(f"Rule {name!r}: the regex does not compile ({exc}).", field="rules") from None
        if name in names:
            raise ValidationFailed(f"Two rules are named {name!r}.", field="rules")
        if name in ("functions", "classes", "tests", "docs", "config"):
            raise ValidationFailed(f"{name!r} is a built-in component; give the rule another name.", field="rules")
        names.add(name)
        out.append({"name": name, **({"glob": glob} if glob else {}), **({"regex": regex} if regex else {})})
    return out


def rules_text(source: Source) -> str:
    lines = []
    for r in source.component_rules.all():
        if r.glob and not r.regex:
            lines.append(f"{r.name}: glob {r.glob}")
        elif r.regex and not r.glob:
            lines.append(f"{r.name}: regex {r.regex}")
        else:  # both: two lines would be two rules; keep the list form for the API
            lines.append(f"{r.name}: glob {r.glob}")
    return "\n".join(lines)


# -- discover -------------------------------------------------------------------------------------------
def source_discover(*, user, path) -> list[dict]:
    """The git repositories inside a local folder (the folder itself first when it is one): what a path
    source may hold. [{path, name, commit, branch, subject, role}] — the first is suggested as the core."""
    require_creator(user)
    folder = _local_path(user, path)
    try:
        found = engine.discover(folder)
    except engine.RepoError as exc:
        raise repo_error(exc) from None
    if not found:
        try:  # the folder's own problem, precisely: not a repository, or one with no commit
            engine.open_repo(folder)
        except engine.RepoError as exc:
            raise repo_error(exc, field="location") from None
        raise ValidationFailed(f"No git repository (with a commit) was found in {folder}.", field="location",
                               code="not_a_git_repo")
    out, taken = [], set()
    for i, info in enumerate(found):
        p = Path(info.path)
        rel = "." if p == folder else (p.relative_to(folder).as_posix() if folder in p.parents else p.name)
        name = _unique(folder.name if rel == "." else rel, taken)
        out.append({"path": str(p), "relative": rel, "name": name, "commit": info.commit, "branch": info.branch,
                    "subject": info.subject, "role": "core" if i == 0 else "plugin"})
    return out


# -- create ---------------------------------------------------------------------------------------------
def _repo_fields(info, **extra) -> dict:
    return {"commit": info.commit, "branch": (info.branch or "")[:255], "commit_time": (info.commit_time or "")[:40],
            "subject": (info.subject or "")[:500], **extra}


def _roles(selection: list[dict]) -> list[dict]:
    """At most one core (the first, when none is marked)."""
    cores = [s for s in selection if s.get("role") == "core"]
    if len(cores) > 1:
        raise ValidationFailed("Mark one repository as the core; the others are plugins.", field="repos")
    for i, s in enumerate(selection):
        s["role"] = "core" if (s is (cores[0] if cores else selection[0])) else "plugin"
    return selection


def _path_repos(user, location, selection) -> tuple[Path, list[dict]]:
    folder = _local_path(user, location)
    found = source_discover(user=user, path=str(folder))
    if selection:
        if not isinstance(selection, (list, tuple)) or len(selection) > MAX_PLUGINS + 1:
            raise ValidationFailed(f"Choose between 1 and {MAX_PLUGINS + 1} repositories.", field="repos")
        by_path = {f["path"]: f for f in found}
        by_rel = {f["relative"]: f for f in found}
        chosen = []
        for s in selection:
            s = s if isinstance(s, dict) else {"path": s}
            key = str(s.get("path") or "")
            hit = by_path.get(key) or by_rel.get(key) or by_path.get(str((folder / key).resolve())) if key else None
            if hit is None:
                raise ValidationFailed(f"{key or '(empty)'} is not one of the git repositories found in {folder}.",
                                       field="repos")
            if any(c["path"] == hit["path"] for c in chosen):
                continue
            chosen.append({**hit, "role": s.get("role") or ""})
        found = chosen
    else:
        found = [{**f, "role": "core" if i == 0 else "plugin"} for i, f in enumerate(found)]
    return folder, _roles(found)


def _store_archive(archive, archive_name: str | None, folder: Path) -> tuple[Path, str]:
    from apps.datasets.services import safe_filename

    limit = conf.max_archive_bytes()
    if isinstance(archive, (str, Path)):
        src = Path(archive)
        if not src.is_file():
            raise ValidationFailed(f"{src} is not a file.", field="archive")
        display = archive_name or src.name
        if src.stat().st_size > limit:
            raise PayloadTooLarge(f"{display} is larger than the {limit >> 20} MB archive limit.", field="archive")
        dest = folder / safe_filename(display)
        shutil.copyfile(src, dest)
        return dest, display
    display = archive_name or getattr(archive, "name", None) or "archive"
    size = getattr(archive, "size", None)
    if size == 0:
        raise ValidationFailed("The archive is empty.", field="archive", code="archive_empty")
    if size is not None and size > limit:
        raise PayloadTooLarge(f"{display} is larger than the {limit >> 20} MB archive limit.", field="archive")
    dest = folder / safe_filename(display)
    with open(dest, "wb") as out:
        chunks = archive.chunks() if hasattr(archive, "chunks") else iter(lambda: archive.read(1 << 20), b"")
        for chunk in chunks:
            out.write(chunk)
    return dest, Path(display).name


def source_create(*, user, kind: str, location: str | None = None, name: str = "", archive=None,
                  archive_name: str | None = None, repos: list | None = None, plugins: list[str] | None = None,
                  rules=None, demo: bool = False) -> Source:
    """Register a source (see the module docstring). `repos`: for a path, the repositories to include, as
    discovered ([{path, role}] or paths; default: all found, the first as the core); `plugins`: for a URL,
    more clone URLs (plugins of the core). Nothing is written when any check fails."""
    require_creator(user)
    if kind not in Source.Kind.values:
        raise ValidationFailed(f"Unknown kind `{kind}` (choose {', '.join(Source.Kind.values)}).", field="kind")
    name = _check_text(name, "name", max_len=200, what="name")
    parsed_rules = parse_rules(rules)
    storage: Path | None = None
    try:
        if kind == Source.Kind.PATH:
            folder, chosen = _path_repos(user, location, repos)
            display_location, key = str(folder), location_key(kind, str(folder))
            name = name or folder.name
            repo_rows = [{"name": c["name"], "role": c["role"], "path": c["path"], "url": "",
                          **_repo_fields(engine.open_repo(c["path"]))} for c in chosen]
        elif kind == Source.Kind.URL:
            url = check_url(location)
            extra = [check_url(p, field="plugins") for p in (plugins or []) if str(p or "").strip()]
            if len(extra) > MAX_PLUGINS:
                raise ValidationFailed(f"At most {MAX_PLUGINS} plugin URLs.", field="plugins")
            display_location, key = url, location_key(kind, url)
            name = name or _url_name(url)
            storage = conf.sources_root() / uuid.uuid4().hex
            (storage / "repos").mkdir(parents=True)
            taken: set[str] = set()
            repo_rows = []
            for i, u in enumerate([url, *extra]):
                repo_name = _unique(_url_name(u), taken)
                dest = storage / "repos" / repo_name
                try:
                    info = engine.clone(u, dest, timeout=conf.clone_timeout_s())
                except engine.RepoError as exc:
                    raise repo_error(exc, field="location" if i == 0 else "plugins") from None
                repo_rows.append({"name": repo_name, "role": "core" if i == 0 else "plugin",
                                  "path": str(Path(info.path).relative_to(conf.sources_root().parent)), "url": u,
                                  **_repo_fields(info)})
        else:
            if archive is None:
                raise ValidationFailed("Choose a zip or tar archive of the working tree.", field="archive")
            storage = conf.sources_root() / uuid.uuid4().hex
            (storage / "upload").mkdir(parents=True)
            stored, display = _store_archive(archive, archive_name, storage / "upload")
            repo_name = _unique(re.sub(r"(\.tar)?\.(zip|tgz|tar|gz|bz2|xz|tbz2|txz)$", "", display) or "archive", set())
            try:
                info = engine.unpack_archive(stored, storage / "repos" / repo_name,
                                             limits=engine.ArchiveLimits(max_total_bytes=conf.max_archive_bytes()))
            except engine.RepoError as exc:
                raise repo_error(exc, field="archive") from None
            finally:
                stored.unlink(missing_ok=True)
            name = name or repo_name
            display_location = str(storage.relative_to(conf.sources_root().parent))
            key = location_key(kind, str(Path(archive).resolve()) if isinstance(archive, (str, Path))
                               else f"upload:{display}")
            repo_rows = [{"name": repo_name, "role": "core", "url": "",
                          "path": str(Path(info.path).relative_to(conf.sources_root().parent)), **_repo_fields(info)}]
        with transaction.atomic():
            source = Source.objects.create(
                name=name, kind=kind, location=display_location, location_key=key[:2000], owner=user, demo=demo,
                archive_name=(archive_name or getattr(archive, "name", "") or
                              (Path(archive).name if isinstance(archive, (str, Path)) else ""))[:255]
                if kind == Source.Kind.ARCHIVE else "",
                last_commit=repo_rows[0]["commit"] if repo_rows else "", scanned_at=timezone.now())
            SourceRepo.objects.bulk_create([SourceRepo(source=source, position=i, **row)
                                            for i, row in enumerate(repo_rows)])
            ComponentRule.objects.bulk_create([ComponentRule(source=source, name=r["name"], glob=r.get("glob", ""),
                                                             regex=r.get("regex", "")) for r in parsed_rules])
        return source
    except engine.RepoError as exc:
        if storage is not None:
            shutil.rmtree(storage, ignore_errors=True)
        raise repo_error(exc) from None
    except BaseException:
        if storage is not None:
            shutil.rmtree(storage, ignore_errors=True)
        raise


def source_refresh_archive(*, user, source_id: int, archive, archive_name: str | None = None) -> Source:
    """A new upload of an archive source's working tree (the CLI run again on the same archive file): unpacked
    beside the current one and swapped in when complete; the next analysis and generation use it (incremental
    by blob hashes). A bad archive changes nothing."""
    source = managed_source(user, source_id)
    if source.kind != Source.Kind.ARCHIVE:
        raise ValidationFailed("Only an archive source takes a new archive.", field="archive")
    repo = source.repos.order_by("position").first()
    old_folder = repo_path(repo).parents[1]
    storage = conf.sources_root() / uuid.uuid4().hex
    try:
        (storage / "upload").mkdir(parents=True)
        stored, _display = _store_archive(archive, archive_name, storage / "upload")
        try:
            info = engine.unpack_archive(stored, storage / "repos" / repo.name,
                                         limits=engine.ArchiveLimits(max_total_bytes=conf.max_archive_bytes()))
        except engine.RepoError as exc:
            raise repo_error(exc, field="archive") from None
        finally:
            stored.unlink(missing_ok=True)
        with transaction.atomic():
            SourceRepo.objects.filter(pk=repo.pk).update(
                path=str(Path(info.path).relative_to(conf.sources_root().parent)), **_repo_fields(info))
            Source.objects.filter(pk=source.pk).update(
                location=str(storage.relative_to(conf.sources_root().parent)), last_commit=info.commit,
                scanned_at=timezone.now())
    except BaseException:
        shutil.rmtree(storage, ignore_errors=True)
        raise
    if conf.sources_root() in old_folder.parents:
        shutil.rmtree(old_folder, ignore_errors=True)
    source.refresh_from_db()
    return source


def source_update(*, user, source_id: int, name: str | None = None, rules=None) -> Source:
    """Rename a source or replace its component rules (they count at the next analysis)."""
    parsed = parse_rules(rules) if rules is not None else None
    with transaction.atomic():
        source = managed_source(user, source_id, lock=True)
        if name is not None:
            source.name = _check_text(name, "name", max_len=200, required=True, what="name")
            source.save(update_fields=["name", "updated_at"])
        if parsed is not None:
            source.component_rules.all().delete()
            ComponentRule.objects.bulk_create([ComponentRule(source=source, name=r["name"], glob=r.get("glob", ""),
                                                             regex=r.get("regex", "")) for r in parsed])
    return source


def source_delete(*, user, source_id: int) -> None:
    """Delete a source, its analyses and generations (its dataset and versions stay: they are data now),
    and its clones / unpacked archives. Refused while one of its jobs runs."""
    with transaction.atomic():
        source = managed_source(user, source_id, lock=True)
        if (Analysis.objects.filter(source=source, status__in=ACTIVE).exists()
                or Generation.objects.filter(source=source, status__in=ACTIVE).exists()):
            raise Conflict("An analysis or a generation of this source is running; cancel it first.")
        stored = {repo_path(r).parents[1] for r in source.repos.all() if not Path(r.path).is_absolute()}
        gen_ids = list(source.generations.values_list("pk", flat=True))
        source.delete()
    for folder in stored:
        if conf.sources_root() in folder.parents:
            shutil.rmtree(folder, ignore_errors=True)
    for gid in gen_ids:
        shutil.rmtree(conf.generations_root() / str(gid), ignore_errors=True)


def scan_repos(source: Source, *, fetch: bool = True, progress=None) -> dict[str, str]:
    """Re-read each repository's commit (a clone fetches and fast-forwards first: re-scanning picks up new
    commits). Offline, a clone keeps its last commit (a note in the returned `notes`). Returns
    {"commits": {name: commit}, "notes": [..]} and records the commits on the rows."""
    commits, notes = {}, []
    repos = list(source.repos.all())
    for i, repo in enumerate(repos):
        path = repo_path(repo)
        try:
            info = engine.update(path, timeout=conf.clone_timeout_s()) if fetch else engine.open_repo(path)
        except engine.RepoError as exc:
            if exc.code in ("network_unavailable", "clone_timeout", "clone_failed", "git_failed") and repo.url:
                notes.append(f"{repo.name}: could not fetch new commits ({exc.message}); using {repo.commit[:10]}.")
                info = engine.open_repo(path)
            else:
                raise
        SourceRepo.objects.filter(pk=repo.pk).update(**_repo_fields(info))
        commits[repo.name] = info.commit
        if progress is not None:
            progress(i + 1, len(repos))
    core = repos[0].name if repos else None
    Source.objects.filter(pk=source.pk).update(last_commit=commits.get(core, "") if core else "",
                                               scanned_at=timezone.now())
    return {"commits": commits, "notes": notes}


def demo_source(*, user) -> Source:
    """The hub's own git checkout as a source of `user` (created once per user; the first-run demo)."""
    require_creator(user)
    folder = conf.hub_checkout()
    existing = Source.objects.filter(owner=user, demo=True).first()
    if existing is not None:
        return existing
    try:
        info = engine.open_repo(folder)
    except engine.RepoError as exc:
        raise ValidationFailed(f"The hub's own folder cannot be used as a sample: {exc.message}",
                               code=exc.code) from None
    return source_create(user=user, kind=Source.Kind.PATH, location=info.path, name="Training Hub (this hub's code)",
                         repos=[{"path": info.path, "role": "core"}], demo=True,
                         rules=[{"name": "services", "glob": "apps/*/services/**"},
                                {"name": "views", "glob": "apps/*/views*"},
                                {"name": "actors", "glob": "workers/*.py"},
                                {"name": "templates", "glob": "templates/**"}])


def demo_source_prepare(*, user) -> tuple[Source | None, str]:
    """The first-run demo for `make run` (load_demo_data): the hub's checkout registered for `user` and analysed
    here (a few seconds), so the sample is ready when the dashboard opens. Idempotent; (None, why) when the
    hub's folder is not a git checkout (e.g. installed from an archive)."""
    from apps.sources.services.analyses import analysis_start

    try:
        source = demo_source(user=user)
    except ValidationFailed as exc:
        return None, exc.message
    if not source.analyses.exists():
        analysis = analysis_start(user=user, source_id=source.pk, inline=True)
        if analysis.status != JobStatus.SUCCEEDED:
            return source, f"its analysis failed: {analysis.error}"
    return source, ""


def source_for_location(*, user, location: str) -> Source | None:
    """The user's source at this path, URL or archive file (the CLI runs again on "the same source")."""
    text = str(location).strip()
    candidates = []
    if _SCP_URL.match(text) or urlsplit(text).scheme in _URL_SCHEMES:
        candidates.append(location_key(Source.Kind.URL, text))
    else:
        p = Path(text).expanduser()
        try:
            p = p.resolve()
        except (OSError, RuntimeError):
            return None
        candidates += [location_key(Source.Kind.PATH, str(p)), location_key(Source.Kind.ARCHIVE, str(p))]
    qs = Source.objects.filter(location_key__in=candidates)
    if not is_admin(user):
        qs = qs.filter(owner=user)
    return qs.order_by("-created_at").first()
