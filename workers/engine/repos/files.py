"""The files of a repository at one commit, read from git objects (never from the work tree).

:func:`list_files` decides from ``git ls-tree -l`` (mode, blob hash, size) before reading anything:
huge files are skipped unread, symlinks are resolved against the tree (outside: skipped and counted),
submodules skipped. :func:`load_snapshot` then streams the remaining blobs through one
``git cat-file --batch`` process and skips binary content (a NUL byte in the first 8 KiB, or not UTF-8).
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
import subprocess
import threading
import weakref
from dataclasses import asdict, dataclass, field

from workers.engine.repos.errors import Progress, RepoError, check_stop
from workers.engine.repos.gitcmd import _SAFE, git, git_binary, git_env

LANGUAGES = {
    ".py": "Python", ".pyi": "Python", ".js": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript",
    ".jsx": "JavaScript", ".ts": "TypeScript", ".tsx": "TypeScript", ".mts": "TypeScript", ".cts": "TypeScript",
    ".java": "Java", ".kt": "Kotlin", ".kts": "Kotlin", ".scala": "Scala", ".go": "Go", ".rs": "Rust",
    ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".cxx": "C++", ".hpp": "C++", ".hh": "C++",
    ".cs": "C#", ".rb": "Ruby", ".php": "PHP", ".swift": "Swift", ".m": "Objective-C", ".lua": "Lua",
    ".sh": "Shell", ".bash": "Shell", ".zsh": "Shell", ".sql": "SQL", ".r": "R", ".R": "R", ".dart": "Dart",
    ".ex": "Elixir", ".exs": "Elixir", ".erl": "Erlang", ".hs": "Haskell", ".clj": "Clojure", ".vue": "Vue",
    ".svelte": "Svelte", ".sol": "Solidity", ".zig": "Zig", ".pl": "Perl", ".f90": "Fortran", ".jl": "Julia",
    ".html": "HTML", ".htm": "HTML", ".css": "CSS", ".scss": "SCSS", ".sass": "SCSS", ".less": "Less",
    ".md": "Markdown", ".markdown": "Markdown", ".mdx": "Markdown", ".rst": "reStructuredText", ".txt": "Text",
    ".json": "JSON", ".jsonc": "JSON", ".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".ini": "INI",
    ".cfg": "INI", ".xml": "XML", ".proto": "Protocol Buffers", ".graphql": "GraphQL", ".tf": "HCL",
}
NAMED_LANGUAGES = {"Dockerfile": "Dockerfile", "Makefile": "Makefile", "CMakeLists.txt": "CMake",
                   "Procfile": "Procfile", "Gemfile": "Ruby", "Rakefile": "Ruby"}
PROSE = {"Markdown", "reStructuredText", "Text"}
CONFIG_LANGS = {"JSON", "YAML", "TOML", "INI", "XML", "Dockerfile", "Makefile", "CMake", "Procfile", "HCL"}
MARKUP = {"HTML", "CSS", "SCSS", "Less"}
BINARY_EXT = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff", ".psd", ".pdf", ".zip",
              ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".jar", ".war", ".class", ".so", ".dylib",
              ".dll", ".exe", ".o", ".a", ".lib", ".pyc", ".pyo", ".whl", ".egg", ".bin", ".dat", ".db",
              ".sqlite", ".sqlite3", ".mp3", ".mp4", ".wav", ".ogg", ".flac", ".mov", ".avi", ".mkv", ".webm",
              ".woff", ".woff2", ".ttf", ".otf", ".eot", ".pt", ".pth", ".safetensors", ".gguf", ".onnx",
              ".npy", ".npz", ".pkl", ".pickle", ".parquet", ".arrow", ".h5", ".hdf5", ".wasm", ".ipynb"}
VENDORED_DIRS = ("node_modules/", "vendor/", "vendors/", "third_party/", "dist/", "build/", "out/", ".venv/",
                 "venv/", "site-packages/", "bower_components/", "__pycache__/", ".git/", "static/vendor/",
                 "coverage/", ".next/", ".nuxt/", "target/")
VENDORED_FILES = ("*.min.js", "*.min.css", "*.map", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
                  "poetry.lock", "Cargo.lock", "Gemfile.lock", "composer.lock", "go.sum", "uv.lock", "*.lock",
                  "*.bundle.js", "*-bundle.js", "*.snap")
SNIFF_BYTES = 8192


def _name(path: str) -> str:
    return path.rpartition("/")[2]


def language_of(path: str) -> str | None:
    name = _name(path)
    if name in NAMED_LANGUAGES:
        return NAMED_LANGUAGES[name]
    dot = name.rfind(".")
    if dot <= 0:
        return None
    suffix = name[dot:]
    return LANGUAGES.get(suffix) or LANGUAGES.get(suffix.lower())


_TEST_DIRS = {"tests", "test", "__tests__", "spec", "specs", "testing"}


def is_test_path(path: str) -> bool:
    p = path.lower()
    folder, _, name = p.rpartition("/")
    if folder and not _TEST_DIRS.isdisjoint(folder.split("/")):
        lang = language_of(path)
        return lang not in PROSE and lang not in CONFIG_LANGS
    return bool(name.startswith("test_") and name.endswith(".py") or name.endswith("_test.py")
                or name.endswith("_test.go") or ".test." in name or ".spec." in name or name.endswith("test.java")
                or name.endswith("tests.cs") or name.endswith("_spec.rb"))


def kind_of(path: str, language: str | None) -> str:
    name = _name(path).lower()
    if language in PROSE or name.startswith(("readme", "changelog", "contributing", "license", "licence", "copying")):
        return "doc"
    if language in CONFIG_LANGS or name.startswith(".") and language is None:
        return "config"
    if language is None or language in MARKUP:
        return "other"
    if is_test_path(path):
        return "test"
    return "code"


_VENDORED_NAME_RE = re.compile("|".join(fnmatch.translate(p) for p in VENDORED_FILES))


def is_vendored(path: str) -> bool:
    if path.startswith(VENDORED_DIRS) or any(f"/{d}" in path for d in VENDORED_DIRS):
        return True
    return _VENDORED_NAME_RE.match(_name(path)) is not None


@dataclass
class FileEntry:
    path: str
    blob: str
    size: int
    language: str | None
    kind: str

    def as_dict(self) -> dict:
        return asdict(self)


class SourceFile:
    """A text file at one commit. Its text is read up front by :func:`load_snapshot`, or — for files an
    incremental run already knows to be text — on first use, from the snapshot's ``git cat-file`` process."""
    __slots__ = ("path", "blob", "size", "language", "kind", "_text", "_snap", "_lines", "_loc")

    def __init__(self, entry: FileEntry, text: str | None, snap: "Snapshot | None" = None):
        self.path, self.blob, self.size = entry.path, entry.blob, entry.size
        self.language, self.kind = entry.language, entry.kind
        self._text, self._snap = text, snap
        self._lines = self._loc = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._snap.read_text_blob(self.blob) if self._snap is not None else ""
        return self._text

    @property
    def lines(self) -> int:
        """Physical lines."""
        if self._lines is None:
            t = self.text
            self._lines = t.count("\n") + (0 if t.endswith("\n") or not t else 1)
        return self._lines

    @property
    def loc(self) -> int:
        """Non-blank lines."""
        if self._loc is None:
            self._loc = sum(1 for line in self.text.splitlines() if line.strip())
        return self._loc

    def as_dict(self) -> dict:  # without the text
        return {"path": self.path, "blob": self.blob, "size": self.size, "language": self.language,
                "kind": self.kind, "lines": self.lines, "loc": self.loc}


@dataclass
class FileListing:
    files: list[FileEntry]
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_paths: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, path: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        bucket = self.skipped_paths.setdefault(reason, [])
        if len(bucket) < 50:
            bucket.append(path)

    def as_dict(self) -> dict:
        return {"files": [f.as_dict() for f in self.files], "skipped": dict(self.skipped),
                "skipped_paths": {k: list(v) for k, v in self.skipped_paths.items()}}


def _ls_tree(repo_path, commit: str) -> list[tuple[str, str, str, int, str]]:
    out = git(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], repo_path, timeout=600).stdout
    rows = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        mode, otype, obj, size = meta.decode().split(None, 3)
        rows.append((mode, otype, obj, int(size) if size.strip() != "-" else 0, path.decode("utf-8", "surrogateescape")))
    return rows


def list_files(repo_path, commit: str, *, max_file_bytes: int = 1_000_000, include_vendored: bool = False) -> FileListing:
    """Text-candidate files at ``commit`` with their blob hashes; skipped ones counted by reason."""
    listing = FileListing(files=[])
    rows = _ls_tree(repo_path, commit)
    links = [(obj, path) for mode, otype, obj, _size, path in rows if mode == "120000"]
    targets = read_blobs(repo_path, [obj for obj, _ in links]) if links else {}
    tracked = {path for *_r, path in rows}
    for mode, otype, obj, size, path in rows:
        if otype == "commit":
            listing.skip("submodule", path)
            continue
        if mode == "120000":
            target = targets.get(obj, b"").decode("utf-8", "replace")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                listing.skip("symlink_outside", path)
            else:
                listing.skip("symlink" if resolved in tracked else "symlink_dangling", path)
            continue
        if not include_vendored and is_vendored(path):
            listing.skip("vendored", path)
            continue
        name = _name(path)
        if name[name.rfind('.'):].lower() in BINARY_EXT and '.' in name:
            listing.skip("binary", path)
            continue
        if size > max_file_bytes:
            listing.skip("huge", path)
            continue
        lang = language_of(path)
        listing.files.append(FileEntry(path=path, blob=obj, size=size, language=lang, kind=kind_of(path, lang)))
    return listing


def iter_objects(repo_path, names: list[str]):
    """Yield ``(name, sha, bytes | None)`` for each object name (a blob hash or ``rev:path``), in order,
    through one ``git cat-file --batch`` process; ``None`` for a missing object."""
    if not names:
        return
    proc = subprocess.Popen([git_binary(), *_SAFE, "cat-file", "--batch"], cwd=str(repo_path),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_env())

    def feed():
        try:
            for n in names:
                proc.stdin.write(n.encode("utf-8", "surrogateescape") + b"\n")
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        out = proc.stdout
        for n in names:
            header = out.readline()
            if not header:
                raise RepoError("git_failed", "git cat-file stopped early.")
            if header.rstrip().endswith((b" missing", b" ambiguous")):
                yield n, None, None
                continue
            parts = header.split()
            size = int(parts[2])
            data = out.read(size)
            out.read(1)  # the newline after the content
            yield n, parts[0].decode(), (data if parts[1] == b"blob" else None)
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        writer.join(timeout=5)


def object_sizes(repo_path, names: list[str]) -> dict[str, tuple[str, str, int] | None]:
    """``name -> (sha, type, size)`` (None when missing) from ``git cat-file --batch-check``: sizes are known
    before anything is read."""
    if not names:
        return {}
    payload = "".join(n + "\n" for n in names).encode("utf-8", "surrogateescape")
    out = git(["cat-file", "--batch-check"], repo_path, input=payload, timeout=300).stdout.decode("utf-8", "replace")
    result: dict[str, tuple[str, str, int] | None] = {}
    for n, line in zip(names, out.splitlines()):
        parts = line.split()
        if line.endswith((" missing", " ambiguous")) or len(parts) < 3:
            result[n] = None
        else:
            result[n] = (parts[0], parts[1], int(parts[2]))
    return result


def iter_blobs(repo_path, blobs: list[str]):
    """Yield ``(blob, bytes | None)`` for each blob hash, in order."""
    for name, _sha, data in iter_objects(repo_path, blobs):
        yield name, data


def read_blobs(repo_path, blobs: list[str]) -> dict[str, bytes]:
    return {b: data for b, data in iter_blobs(repo_path, list(dict.fromkeys(blobs))) if data is not None}


def read_text(repo_path, commit: str, path: str) -> str:
    """``git show commit:path`` decoded as UTF-8: what every ``<file>`` block must equal."""
    return git(["show", f"{commit}:{path}"], repo_path, timeout=120).stdout.decode("utf-8")


def decode_text(data: bytes) -> str | None:
    """The text of a blob, or None when it is binary (NUL in the first 8 KiB, or not UTF-8)."""
    if b"\0" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class BlobReader:
    """One long-lived ``git cat-file --batch`` process answering one blob at a time."""

    def __init__(self, repo_path):
        self.proc = subprocess.Popen([git_binary(), *_SAFE, "cat-file", "--batch"], cwd=str(repo_path),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=git_env())

    def read(self, blob: str) -> bytes | None:
        self.proc.stdin.write(blob.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline()
        if not header or header.rstrip().endswith((b" missing", b" ambiguous")):
            return None
        size = int(header.split()[2])
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class Snapshot:
    """The text files at one commit (``files``: path -> :class:`SourceFile`), and what was skipped."""

    def __init__(self, repo_path, commit: str, files: dict, skipped: dict, skipped_paths: dict):
        self.repo_path, self.commit = str(repo_path), commit
        self.files: dict[str, SourceFile] = files
        self.skipped, self.skipped_paths = skipped, skipped_paths
        self._reader: BlobReader | None = None
        self._finalizer = None

    def read_text_blob(self, blob: str) -> str:
        if self._reader is None:
            self._reader = BlobReader(self.repo_path)
            self._finalizer = weakref.finalize(self, self._reader.close)
        data = self._reader.read(blob)
        text = decode_text(data) if data is not None else None
        return text if text is not None else ""

    def text_blobs(self) -> dict[str, str]:
        """path -> blob of every text file (an incremental run passes it back as ``known_text``)."""
        return {p: f.blob for p, f in self.files.items()}

    def by_kind(self, kind: str) -> list[SourceFile]:
        return [f for f in self.files.values() if f.kind == kind]

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._reader = self._finalizer = None


def load_snapshot(repo_path, commit: str, *, max_file_bytes: int = 1_000_000, progress=None,
                  should_stop=None, known_text: dict[str, str] | None = None,
                  listing: FileListing | None = None) -> Snapshot:
    """List the files at ``commit`` and read the text ones (binary ones skipped and counted).
    ``known_text`` (path -> blob, from a previous snapshot's :meth:`Snapshot.text_blobs`) names files already
    known to be text: they are not read now, only when something asks for their text. ``listing``: this
    commit's :func:`list_files` when the caller already has it (it is not listed again)."""
    if listing is None:
        listing = list_files(repo_path, commit, max_file_bytes=max_file_bytes)
    known = known_text or {}
    snap = Snapshot(repo_path, commit, {}, {}, {})
    todo = [e.blob for e in listing.files if known.get(e.path) != e.blob]
    texts: dict[str, str | None] = {}
    bar = Progress(progress, "files", len(todo), every=200)
    for blob, data in iter_blobs(repo_path, list(dict.fromkeys(todo))):
        texts[blob] = decode_text(data) if data is not None else None
        bar.step()
        if len(texts) % 200 == 0:
            check_stop(should_stop)
    for e in listing.files:
        if known.get(e.path) == e.blob:
            snap.files[e.path] = SourceFile(e, None, snap)
            continue
        text = texts.get(e.blob)
        if text is None:
            listing.skip("binary", e.path)
            continue
        snap.files[e.path] = SourceFile(e, text, snap)
    bar.finish()
    snap.skipped, snap.skipped_paths = dict(listing.skipped), listing.skipped_paths
    return snap
