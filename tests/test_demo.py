"""`embrecall demo` on the built-in data: the planted tastes must come out."""

from __future__ import annotations

import numpy as np

from embrecall.demo import run_demo, write_demo_data
from embrecall.demo.data import GENRES


def test_demo_runs_and_a_fan_gets_their_genre(tmp_path):
    lines: list[str] = []
    rec = run_demo(out_dir=tmp_path, emit=lines.append)
    text = "\n".join(lines)
    assert (
        "Top 10 recommendations" in text
        and "Movies most like" in text
        and "Users most like" in text
    )
    assert (tmp_path / "artifact" / "manifest.json").exists()
    favourites = write_demo_data(tmp_path / "again").favourite_genre  # same seed, same truth
    shares = []
    for user in list(favourites)[:50]:
        ids, _ = rec.recommend(user, k=10)
        genres = [r["genres"].split("|") for r in rec.catalog.records(list(ids))]
        shares.append(np.mean([favourites[user] in g for g in genres]))
    assert np.mean(shares) >= 0.9


def test_demo_data_is_seeded_and_movielens_shaped(tmp_path):
    a = write_demo_data(tmp_path / "a")
    b = write_demo_data(tmp_path / "b")
    assert a.items.read_text() == b.items.read_text()
    header = a.catalog.read_text().splitlines()[0]
    assert header == "movieId,title,genres"
    assert any(
        line.split(",", 1)[1].startswith('"') and ", The (" in line
        for line in a.catalog.read_text().splitlines()
    )  # quoted titles with commas
    assert a.items.read_text().startswith("id,features\n") and '"[' in a.items.read_text()
    assert set(a.favourite_genre.values()) <= set(GENRES)


def _demo(tmp_path, *argv):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-m", "embrecall", "demo", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_demo_removes_its_temporary_folder(tmp_path):
    proc = _demo(tmp_path)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    proc.stderr.close()
    assert list(tmp_path.glob("embrecall-demo-*")) == []
    proc = _demo(tmp_path, "--movielens", str(tmp_path))  # an error: --embeddings missing
    assert proc.wait(timeout=120) == 1
    proc.stderr.close()
    assert list(tmp_path.glob("embrecall-demo-*")) == []


def test_demo_removes_its_temporary_folder_on_ctrl_c(tmp_path):
    import signal
    import time

    proc = _demo(tmp_path)
    deadline = time.monotonic() + 60
    # interrupt once its data is written, while it builds
    while not list(tmp_path.glob("embrecall-demo-*/data/*")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) in (0, 130)
    proc.stderr.close()
    assert list(tmp_path.glob("embrecall-demo-*")) == []
