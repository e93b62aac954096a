"""The core of batch recall works without its extras; a missing extra is named when needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter in which redis, pyspark and torch cannot be imported.
SCRIPT = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("redis", "pyspark", "torch"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, Block())
import embrecall.batch, embrecall.batch.spark, embrecall.batch.commands, embrecall.batch.gpu
from embrecall.batch import cached, open_sink, plan_batch, run_batch
from embrecall.batch.gpu import cuda_available
from embrecall.errors import MissingExtraError
from helpers import build_small
from pathlib import Path

rec = build_small(Path(sys.argv[1]))
run_batch(plan_batch(rec, k=3, device="auto"), sys.argv[1] + "/o.sqlite", progress=False)
assert len(cached(rec.users.ids[0], sys.argv[1] + "/o.sqlite")[0]) == 3
assert not cuda_available()
for action, extra in (
    (lambda: open_sink("redis://127.0.0.1:6379/0"), "redis"),
    (lambda: embrecall.batch.spark.read_factors(None, "x"), "spark"),
    (lambda: plan_batch(rec, k=3, device="cuda"), None),
):
    try:
        action()
    except MissingExtraError as exc:
        assert f"embrecall[{extra}]" in str(exc), exc
    except Exception as exc:
        assert extra is None and "torch is not installed or sees no CUDA GPU" in str(exc), exc
    else:
        raise AssertionError("no error")
print("ok")
"""


def test_batch_runs_without_redis_pyspark_and_torch(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
