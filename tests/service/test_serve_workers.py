"""`embrecall serve --workers N` as real processes: the workers share the port and a
memory-mapped copy of the version, each follows CURRENT, and they stop with the parent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import SRC, ServeProcess, import_extra

from .support import USERS, corrupt, wait_for

import_extra("fastapi")
import_extra("uvicorn")
httpx = import_extra("httpx")

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc")


def _children(pid: int) -> set[int]:
    """Every process below ``pid`` (the workers, and multiprocessing's helper)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found |= {int(entry.name)} | _children(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _mapped(pid: int, directory: Path) -> list[str]:
    """Files under ``directory`` that process ``pid`` has mapped into memory."""
    prefix = str(directory.resolve())
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return sorted({ln.split()[-1] for ln in lines if ln.split()[-1].startswith(prefix)})


def _info(url: str) -> dict | None:
    # a connection per request, so that the kernel hands each one to either worker
    try:
        return httpx.get(url + "/v1/info", timeout=30).json()
    except httpx.ConnectError:  # the socket listens once the first worker has started
        return None


def _by_pid(url: str, until) -> dict[int, dict]:
    """The last /v1/info each worker answered, asked until ``until(answers)``."""
    answers: dict[int, dict] = {}

    def reached() -> bool:
        for info in filter(None, pool.map(lambda _: _info(url), range(4))):
            answers[info["pid"]] = info
        return until(answers)

    with ThreadPoolExecutor(4) as pool:  # concurrent connections reach both workers
        wait_for(reached, timeout=120, interval=0)
    return answers


def test_two_workers_share_the_port_and_the_mapped_version_and_follow_current(root, artifacts):
    server = ServeProcess(
        str(root.path), "--port", "0", "--workers", "2", "--watch-interval", "0.1"
    )
    try:
        parent = server.proc.pid
        workers = _by_pid(server.url, lambda a: len(a) == 2)
        pids = set(workers)
        assert pids <= _children(parent) and parent not in pids
        # every request is answered, by one worker or the other
        recommend = f"{server.url}/v1/users/{{}}/recommendations?k=3"
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(lambda u: httpx.get(recommend.format(u), timeout=30).status_code, USERS)
            )
        assert codes == [200] * len(codes)
        # the workers map the version's files; the parent never loaded it
        version_dir = root.path / "versions" / "v1"
        for pid in pids:
            assert _mapped(pid, version_dir), pid
        assert _mapped(parent, root.path) == []
        # a publish moves CURRENT: each worker sees it and swaps on its own
        root.publish(artifacts["v2"], "v2")
        answers = _by_pid(
            server.url, lambda a: set(a) == pids and all(i["version"] == "v2" for i in a.values())
        )
        assert {i["version"] for i in answers.values()} == {"v2"}
        everyone = _children(parent)
    finally:
        code = server.stop()
    assert code == 0, "".join(server.lines)
    wait_for(lambda: not any(_alive(p) for p in everyone))  # no orphans
    log = "".join(server.lines)
    assert log.count("serving version v1") == 2 and log.count("serving version v2") == 2
    assert "Traceback" not in log


def test_workers_refuse_a_broken_artifact_and_stop(tmp_path, artifacts):
    bad = tmp_path / "bad"
    shutil.copytree(artifacts["v1"], bad)
    corrupt(bad / "items" / "vectors.npy")
    proc = subprocess.run(
        [sys.executable, "-m", "embrecall", "serve", str(bad), "--port", "0", "--workers", "2"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=180,
    )
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1, proc.stderr
    assert last.startswith("embrecall: error: cannot serve") and "SHA-256" in last
    assert "Traceback" not in proc.stderr


def test_workers_must_be_positive(artifacts):
    proc = subprocess.run(
        [sys.executable, "-m", "embrecall", "serve", str(artifacts["v1"]), "--workers", "0"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--workers: must be at least 1" in proc.stderr
