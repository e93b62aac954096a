"""What the `embrecall` command prints around its answers: pipes, help, quiet builds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from embrecall.cli import main
from embrecall.demo.data import write_demo_data
from helpers import SRC, run_embrecall


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Enough movies that a full table is larger than a pipe's buffer."""
    return write_demo_data(tmp_path_factory.mktemp("data"), n_users=20, n_movies=2000)


@pytest.fixture(scope="module")
def big_artifact(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "artifact"
    argv = ["build", "--items", str(data.items), "--users", str(data.users)]
    argv += ["--catalog", str(data.catalog), "--out", str(out), "-q"]
    assert main(argv) == 0
    return out


def test_a_reader_that_stops_early_is_no_error(big_artifact):
    # `head -2` leaves after two lines; the table is ~200 KB, so the writer meets a closed pipe.
    env = {**os.environ, "PYTHONPATH": SRC}
    command = (
        f"set -o pipefail; {sys.executable} -m embrecall recommend {big_artifact} 1 -k 1900 "
        "| head -2"
    )
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr == ""  # no "Broken pipe", no traceback


def test_similar_users_help_says_user_ids():
    out = run_embrecall("similar-users", "--help").stdout
    assert "comma-separated user ids to leave out" in " ".join(out.split())
    assert "item ids" not in out


def test_quiet_build_silences_faiss_training_warnings(data, tmp_path):
    # 2,000 vectors into 256 lists: faiss's k-means warns it wants 9,984 training points.
    argv = ["build", "--items", str(data.items), "--index", "IVF256,Flat"]
    loud = run_embrecall(*argv, "--out", str(tmp_path / "a"))
    assert loud.returncode == 0, loud.stderr
    assert "please provide at least" in loud.stderr  # shown, through the logger
    quiet = run_embrecall(*argv, "--out", str(tmp_path / "b"), "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
