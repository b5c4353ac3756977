"""Sources: local repositories, discovery, clones, uploaded archives — and every bad input's error."""
from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile

import pytest

from tests.engine_repos.conftest import Repo, git
from workers.engine.repos import ArchiveLimits, RepoError, clone, discover, open_repo, unpack_archive, update


def codes(fn, *a, **kw) -> str:
    with pytest.raises(RepoError) as exc:
        fn(*a, **kw)
    assert exc.value.message  # a sentence for the user
    return exc.value.code


def test_open_repo_records_the_head_commit(sample):
    info = open_repo(sample.path)
    assert info.commit == git(sample.path, "rev-parse", "HEAD").strip()
    assert info.branch == "main" and not info.is_bare
    assert info.subject.startswith("feat: add price formatting")
    sub = open_repo(sample.path / "tests")  # a folder inside the work tree resolves to its root
    assert sub.path == str(sample.path) and sub.commit == info.commit
    first = git(sample.path, "rev-list", "--max-parents=0", "HEAD").strip()
    assert open_repo(sample.path, commit=first).commit == first


def test_bad_local_sources_have_clear_codes(tmp_path, sample):
    assert codes(open_repo, tmp_path / "missing") == "path_not_found"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert codes(open_repo, plain) == "not_a_git_repo"
    empty = Repo(tmp_path / "empty")
    assert codes(open_repo, empty.path) == "empty_repo"
    assert codes(open_repo, sample.path, commit="no-such-branch") == "unknown_commit"


def test_discover_lists_repositories_in_a_folder(tmp_path):
    root = tmp_path / "workspace"
    core = Repo(root / "core")
    core.commit("Add core", {"a.py": "x = 1\n"})
    plugin = Repo(root / "plugins" / "plugin-a")
    plugin.commit("Add plugin", {"b.py": "y = 2\n"})
    Repo(root / "plugins" / "empty")  # no commits: skipped
    (root / "notes").mkdir()
    found = discover(root)
    assert [os.path.relpath(r.path, root) for r in found] == ["core", "plugins/plugin-a"]
    assert all(len(r.commit) == 40 for r in found)
    assert codes(discover, tmp_path / "nope") == "path_not_found"


def test_clone_from_a_url_and_update_picks_up_new_commits(tmp_path, sample):
    dest = tmp_path / "clones" / "calc.git"
    info = clone(f"file://{sample.path}", dest, timeout=60)
    assert info.commit == open_repo(sample.path).commit and info.is_bare
    new = sample.commit("Add a subtract function to calc", {"calc.py": open(sample.path / "calc.py").read()
                                                            + "\n\ndef sub(a, b):\n    return a - b\n"})
    assert update(dest, timeout=60).commit == new
    # a local path (not a hub clone) is only re-read, never fetched into
    assert update(sample.path).commit == new


def test_clone_errors(tmp_path):
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    assert codes(clone, "not a url", tmp_path / "x") == "invalid_url"
    assert codes(clone, "--upload-pack=evil", tmp_path / "x") == "invalid_url"
    # .invalid never resolves: this is what an offline machine sees
    code = codes(clone, "https://nonexistent.invalid/org/repo.git", tmp_path / "y", timeout=30)
    assert code == "network_unavailable"
    assert not (tmp_path / "y").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no half-made clone folder left
    assert codes(clone, f"file://{tmp_path}/missing.git", tmp_path / "z", timeout=30) == "clone_failed"


def _zip(path, members: dict, *, symlinks: dict | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(path, members: dict, *, symlinks: dict | None = None, hardlinks: dict | None = None):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
        for name, target in (hardlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.LNKTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def test_archive_of_a_working_tree_becomes_a_repository(tmp_path):
    arc = _zip(tmp_path / "up.zip", {"proj/src/a.py": b"def f():\n    return 1\n", "proj/README.md": b"# Proj\n"},
               symlinks={"proj/link.py": "src/a.py"})
    info = unpack_archive(arc, tmp_path / "out")
    assert (tmp_path / "out" / "src" / "a.py").read_text() == "def f():\n    return 1\n"  # top folder stripped
    assert os.readlink(tmp_path / "out" / "link.py") == "src/a.py"
    assert len(info.commit) == 40 and info.subject == "Uploaded archive"
    # deterministic: the same upload gives the same commit
    again = unpack_archive(arc, tmp_path / "out2")
    assert again.commit == info.commit


def test_archive_holding_a_git_repository_keeps_its_history(tmp_path, sample):
    arc = tmp_path / "repo.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(sample.path, arcname="calc")
    (sample.path / ".git" / "hooks").mkdir(exist_ok=True)
    info = unpack_archive(arc, tmp_path / "out")
    assert info.commit == open_repo(sample.path).commit
    assert not (tmp_path / "out" / ".git" / "hooks").exists()  # uploaded hooks never kept


@pytest.mark.parametrize("name", ["../evil.py", "/etc/evil.py", "proj/../../evil.py"])
def test_archive_path_traversal_is_refused_and_nothing_is_extracted(tmp_path, name):
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    for arc in (_zip(tmp_path / "t.zip", {"ok.py": b"x", name: b"y"}), _tar(tmp_path / "t.tgz", {"ok.py": b"x", name: b"y"})):
        dest = tmp_path / "out"
        assert codes(unpack_archive, arc, dest) == "archive_path_traversal"
        assert not dest.exists()
    assert not (tmp_path.parent / "evil.py").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tgz", "t.zip"]  # no temp folder left


def test_archive_symlinks_pointing_outside_are_refused(tmp_path):
    for arc in (_zip(tmp_path / "s.zip", {"a.py": b"x"}, symlinks={"passwd": "/etc/passwd"}),
                _tar(tmp_path / "s.tgz", {"a.py": b"x"}, symlinks={"sub/up": "../../secret"}),
                _tar(tmp_path / "h.tgz", {"a.py": b"x"}, hardlinks={"h": "/etc/passwd"})):
        assert codes(unpack_archive, arc, tmp_path / "out") == "archive_symlink_outside"
        assert not (tmp_path / "out").exists()


def test_archive_size_and_count_limits(tmp_path):
    arc = _tar(tmp_path / "big.tgz", {"a.txt": b"a" * 5000, "b.txt": b"b" * 5000})
    assert codes(unpack_archive, arc, tmp_path / "o1", limits=ArchiveLimits(max_member_bytes=4000)) == "archive_too_large"
    assert codes(unpack_archive, arc, tmp_path / "o2", limits=ArchiveLimits(max_total_bytes=8000)) == "archive_too_large"
    assert codes(unpack_archive, arc, tmp_path / "o3", limits=ArchiveLimits(max_members=1)) == "archive_too_many_files"
    # a zip bomb: tiny compressed, large expanded
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.txt", b"\0" * 2_000_000)
    assert bomb.stat().st_size < 20_000
    assert codes(unpack_archive, bomb, tmp_path / "o4", limits=ArchiveLimits(max_total_bytes=1_000_000)) == "archive_too_large"
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))


def test_archive_unsupported_corrupt_and_empty(tmp_path):
    (tmp_path / "x.rar").write_bytes(b"Rar!\x1a\x07\x00 not really")
    assert codes(unpack_archive, tmp_path / "x.rar", tmp_path / "o") == "archive_unsupported"
    good = _zip(tmp_path / "c.zip", {"a.py": b"x" * 1000})
    data = bytearray(good.read_bytes())
    data[40:60] = b"\xff" * 20  # damage the member data
    (tmp_path / "c2.zip").write_bytes(bytes(data))
    assert codes(unpack_archive, tmp_path / "c2.zip", tmp_path / "o") in ("archive_corrupt",)
    assert codes(unpack_archive, _zip(tmp_path / "e.zip", {"dir/": b""}), tmp_path / "o") == "archive_empty"
    assert codes(unpack_archive, tmp_path / "none.zip", tmp_path / "o") == "path_not_found"


def test_a_clone_that_hangs_is_stopped_at_its_timeout(tmp_path):
    import socket
    import time

    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    try:
        started = time.monotonic()
        code = codes(clone, f"git://127.0.0.1:{silent.getsockname()[1]}/repo.git", tmp_path / "c" / "r", timeout=2)
        assert code == "clone_timeout" and time.monotonic() - started < 15
        assert not (tmp_path / "c" / "r").exists() and list((tmp_path / "c").iterdir()) == []
    finally:
        silent.close()
