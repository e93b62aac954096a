"""kill -9 of real `publish`, `publish --move` and `build --out` processes at several points:
the next run removes what they left, a moved source is never lost, and `versions` stays right.

Each test polls for the on-disk state it kills at (no sleeps to guess timings). The artifact is
large enough (about 50 MB) that a publish spends a second or so copying, hashing and checking.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embrecall.artifact import ArtifactExistsError, save_artifact, verify_artifact
from embrecall.versions import VersionRoot

from .support import build_version

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")

N_ITEMS, DIM = 100_000, 64


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Path]:
    """An items file and the artifact `build` makes of it (exact index, no users)."""
    tmp = tmp_path_factory.mktemp("big")
    vectors = np.random.default_rng(0).standard_normal((N_ITEMS, DIM)).astype(np.float32)
    np.save(tmp / "items.npy", vectors)
    out = tmp / "artifact"
    _embrecall("build", "--items", tmp / "items.npy", "--index", "Flat", "--out", out, "-q")
    return {"items": tmp / "items.npy", "artifact": out}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    path = tmp / "artifact"
    build_version(tmp / "data", seed=0).save(path)
    return path


def _embrecall(*argv) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "embrecall", *map(str, argv)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _start(*argv) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "embrecall", *map(str, argv)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(proc: subprocess.Popen, reached, *, may_finish: bool = False) -> bool:
    """SIGKILL ``proc`` as soon as ``reached()``; True when it was killed (not finished)."""
    deadline = time.monotonic() + 60
    while not reached():
        if proc.poll() is not None:
            if may_finish and proc.returncode == 0:
                return False
            pytest.fail(f"exited {proc.returncode} before the kill point: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    proc.stderr.close()
    if proc.returncode == 0:
        assert may_finish, "finished before it could be killed"
        return False
    assert proc.returncode == -9
    return True


def _staging(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.startswith(".staging-")] if root.is_dir() else []


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _versions(root: Path) -> dict:
    return json.loads(_embrecall("versions", root, "--json").stdout)


def _check_after_kill(root: Path, new: str) -> None:
    """After the kill: `versions` is right, the next publish cleans up and succeeds."""
    listing = _versions(root)
    current = listing["current"]
    assert current in ("v0", new)
    assert listing["rollback_to"] == ("v0" if current == new else None)
    left = [p.name for p in root.iterdir() if p.name.startswith(".staging-") or p.suffix == ".tmp"]
    assert sorted(listing["leftovers"]) == sorted(left)
    assert {v["id"] for v in listing["versions"]} <= {"v0", new}


def _next_publish_cleans(root: Path, small: Path) -> None:
    _embrecall("publish", small, root, "--id", "next")
    vroot = VersionRoot(root)
    assert _staging(root) == [] and vroot.leftovers() == [] and vroot.current() == "next"


def _root_with_v0(tmp_path: Path, small: Path) -> Path:
    root = tmp_path / "root"
    VersionRoot(root).publish(small, "v0")
    return root


def _copying(root: Path):
    return lambda: any((p / "artifact").is_dir() for p in _staging(root))


def _copied(root: Path, size: int):
    return lambda: any(
        (p / "artifact").is_dir() and _size(p / "artifact") >= size for p in _staging(root)
    )


@pytest.mark.parametrize("point", ["mid-copy", "copied, checking", "publishing"])
def test_killed_publish_leaves_nothing_after_the_next(tmp_path, big, small, point):
    root = _root_with_v0(tmp_path, small)
    proc = _start("publish", big["artifact"], root, "--id", "big")
    reached = {
        "mid-copy": _copying(root),
        "copied, checking": _copied(root, _size(big["artifact"])),
        "publishing": lambda: (root / "versions" / "big").exists(),
    }[point]
    killed = _kill_when(proc, reached, may_finish=point == "publishing")
    if killed and point != "publishing":
        assert _staging(root), "the kill point is inside the staging"
    _check_after_kill(root, "big")
    verify_artifact(big["artifact"])  # a copy: the source is untouched
    _next_publish_cleans(root, small)


@pytest.mark.parametrize("point", ["staging", "taken", "publishing"])
def test_killed_publish_move_never_loses_the_source(tmp_path, big, small, point):
    root = _root_with_v0(tmp_path, small)
    src = tmp_path / "to-move"
    shutil.copytree(big["artifact"], src)
    proc = _start("publish", src, root, "--id", "big", "--move")
    reached = {
        "staging": lambda: bool(_staging(root)),
        "taken": lambda: not src.exists(),
        "publishing": lambda: (root / "versions" / "big").exists(),
    }[point]
    _kill_when(proc, reached, may_finish=point == "publishing")
    _check_after_kill(root, "big")
    _next_publish_cleans(root, small)
    published = VersionRoot(root).has("big")
    assert published != src.exists(), "the source is either back in place or published"
    if published:
        verify_artifact(VersionRoot(root).path_of("big"))
    else:
        verify_artifact(src)
        _embrecall("publish", src, root, "--id", "big", "--move")
        assert not src.exists() and _versions(root)["current"] == "big"


def test_a_live_publish_keeps_its_staging(tmp_path, big, small):
    root = _root_with_v0(tmp_path, small)
    proc = _start("publish", big["artifact"], root, "--id", "big")
    deadline = time.monotonic() + 60
    while not _staging(root):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    assert VersionRoot(root).leftovers() == []  # its owner is alive
    # a second publish waits for the first instead of removing its staging
    VersionRoot(root).publish(small, "second")
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    proc.stderr.close()
    assert VersionRoot(root).ids() == ["v0", "big", "second"] and _staging(root) == []


def _leftovers_of(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _build_argv(big, out: Path, *extra) -> list:
    return ["build", "--items", big["items"], "--index", "Flat", "--out", out, "-q", *extra]


def _temp_of(out: Path):
    return lambda: any(n.startswith(f".{out.name}.tmp-") for n in _leftovers_of(out))


@pytest.mark.parametrize("overwrite", [False, True])
def test_killed_build_leaves_nothing_after_the_next(tmp_path, big, overwrite):
    out = tmp_path / "art"
    if overwrite:
        shutil.copytree(big["artifact"], out)
    proc = _start(*_build_argv(big, out, *(["--force"] if overwrite else [])))
    assert _kill_when(proc, _temp_of(out))
    assert _leftovers_of(out), "the temporary folder was there at the kill"
    if overwrite:
        verify_artifact(out)  # the old artifact stays until the new one is complete
    else:
        assert not out.exists()
    _embrecall(*_build_argv(big, out, "--force"))
    assert _leftovers_of(out) == []
    verify_artifact(out)


def test_a_live_build_keeps_its_temporary_folder(tmp_path, big):
    out = tmp_path / "art"
    proc = _start(*_build_argv(big, out))
    deadline = time.monotonic() + 60
    while not _temp_of(out)():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    rec = build_version(tmp_path / "data", seed=0)
    with pytest.raises(ArtifactExistsError):
        save_artifact(rec, out)  # waits for the live build, then finds its artifact
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    proc.stderr.close()
    verify_artifact(out)
    assert _leftovers_of(out) == []
    assert not os.path.exists(out.with_name(".art.lock"))
