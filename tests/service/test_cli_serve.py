"""`serve` as a real process, the light imports, and the missing-extra message."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ServeProcess, import_extra

from .support import USERS, corrupt

import_extra("fastapi")
import_extra("uvicorn")
httpx = import_extra("httpx")

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _run_py(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def _serve(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-m", "embrecall", "serve", *args, "--log-level", "info"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_runs_a_real_server_process(root):
    server = ServeProcess(str(root.path), "--port", "0")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/readyz").json() == {"status": "ready", "version": "v1"}
            r = c.get(f"/v1/users/{USERS[0]}/recommendations?k=3")
            assert r.status_code == 200 and len(r.json()["results"]) == 3
            assert "server" not in r.headers  # no server banner
    finally:
        # uvicorn re-raises the signal after a graceful shutdown
        assert server.stop() in (0, -signal.SIGTERM)
    assert any("serving version v1" in line for line in server.lines)
    assert any("Finished server process" in line for line in server.lines)


def test_serve_refuses_what_it_cannot_serve(tmp_path, artifacts):
    proc = _serve(str(tmp_path), "--port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "neither an artifact" in err
    bad = tmp_path / "bad"
    shutil.copytree(artifacts["v1"], bad)
    corrupt(bad / "items" / "vectors.npy")
    proc = _serve(str(bad), "--port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("embrecall: error: cannot serve")
    assert "SHA-256" in err.strip().splitlines()[-1]


def test_importing_the_core_and_the_cli_commands_does_not_import_fastapi():
    out = _run_py(
        "import sys, embrecall, embrecall.cli, embrecall.versions, embrecall.service, "
        "embrecall.service.commands, embrecall.service.canary, embrecall.service.monitor\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'pydantic', "
        "'prometheus_client') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["app", "routes", "settings", "schemas", "errors", "metrics"])
def test_missing_extra_is_named(module):
    out = _run_py(
        "import sys\n"
        "for m in ('fastapi', 'prometheus_client', 'orjson'): sys.modules[m] = None\n"
        "from embrecall.errors import MissingExtraError\n"
        "try:\n"
        f"    import embrecall.service.{module}\n"
        "except MissingExtraError as e:\n"
        "    print(e)\n"
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'embrecall[server]'" in out.stdout


def test_serve_without_uvicorn_says_which_extra(artifacts):
    out = _run_py(
        "import sys\n"
        "sys.modules['uvicorn'] = None\n"
        "from embrecall.cli import main\n"
        f"sys.exit(main(['serve', {str(artifacts['v1'])!r}]))\n"
    )
    assert out.returncode == 1 and "embrecall[server]" in out.stderr
