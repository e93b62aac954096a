"""What build refuses, skips or warns about on messy input: the library, then the real command.

Files are written to tmp_path; nothing is mocked. Each CLI case checks: a non-zero exit, one line
on stderr naming the file and line, no traceback, nothing written to --out.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import embrecall
from embrecall.catalog import Catalog
from embrecall.embeddings import Embeddings
from embrecall.errors import InvalidVectorError
from embrecall.recommender import Recommender

DIM = 4


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _csv(path: Path, ids, vectors) -> Path:
    lines = ["id,features"]
    lines += [f'{i},"[{", ".join(repr(float(x)) for x in v)}]"' for i, v in zip(ids, vectors)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _with_zero(n: int, row: int, seed: int = 0) -> np.ndarray:
    vectors = _vectors(n, seed)
    vectors[row] = 0.0
    return vectors


# -- zero vectors and cosine: Recommender.build ------------------------------------------------
def test_build_refuses_a_zero_item_vector_for_cosine(tmp_path):
    items = embrecall.read_embeddings(_csv(tmp_path / "i.csv", range(1, 9), _with_zero(8, 4)))
    with pytest.raises(InvalidVectorError) as e:
        Recommender.build(items)
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'i.csv'}: line 6 (id 5): vector is all zeros")
    assert "similar_items" in message and "\n" not in message


def test_build_refuses_a_zero_user_vector_for_similar_users(tmp_path):
    items = Embeddings(range(1, 9), _vectors(8))
    users = embrecall.read_embeddings(_csv(tmp_path / "u.csv", [7, 8, 9], _with_zero(3, 0)))
    with pytest.raises(InvalidVectorError, match=r"line 2 \(id 7\).*similar_users"):
        Recommender.build(items, users)


def test_zero_vectors_are_fine_where_no_query_kind_is_cosine():
    items = Embeddings(range(1, 9), _with_zero(8, 4))
    rec = Recommender.build(items, metrics={"similar_items": "ip"}, index="Flat")
    assert len(rec.items) == 8


def test_pipeline_skip_drops_zero_vectors_and_reports_them(tmp_path):
    rec = embrecall.build(
        _csv(tmp_path / "i.csv", range(1, 9), _with_zero(8, 4)),
        _csv(tmp_path / "u.csv", [7, 8, 9], _with_zero(3, 2, seed=1)),
        read_options={"on_bad_row": "skip"},
    )
    assert 5 not in rec.items.ids.tolist() and len(rec.items) == 7
    assert [(s.line, "all zeros" in s.reason) for s in rec.items.skipped] == [(6, True)]
    assert rec.users.ids.tolist() == [7, 8] and [s.line for s in rec.users.skipped] == [4]


# -- query vectors -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rec() -> Recommender:
    users = Embeddings([7, 8, 9], _vectors(3, seed=1))
    return Recommender.build(Embeddings(range(1, 9), _vectors(8)), users, index="Flat")


def test_zero_query_vector_is_refused_for_cosine_only(rec):
    with pytest.raises(InvalidVectorError, match="all zeros"):
        rec.similar_items_by_vector([0.0] * DIM)
    ids, _ = rec.recommend_by_vector([0.0] * DIM, k=3)  # inner product: a valid query
    assert len(ids) == 3


@pytest.mark.filterwarnings("error")
def test_overflowing_query_vector_is_refused(rec):
    for query in ("recommend", "similar_items"):
        with pytest.raises(InvalidVectorError, match="overflows float32"):
            rec.search(query, [3e38, 3e38, 0.0, 0.0])


# -- catalogue coverage ------------------------------------------------------------------------
def _catalog(ids) -> Catalog:
    frame = pd.DataFrame({"title": [f"t{i}" for i in ids]}, index=pd.Index(ids, name="id"))
    return Catalog(frame)


def test_a_partial_catalogue_is_logged_as_a_warning(caplog):
    items = Embeddings(range(1, 9), _vectors(8))
    with caplog.at_level(logging.WARNING, logger="embrecall"):
        Recommender.build(items, catalog=_catalog([1, 2, 3, 4, 5, 99]), index="Flat")
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "no entry for 3 of 8 items (e.g. 6, 7, 8)" in record.getMessage()


def test_a_catalogue_matching_no_item_is_logged_as_a_warning(caplog):
    items = Embeddings(range(1, 9), _vectors(8))
    with caplog.at_level(logging.WARNING, logger="embrecall"):
        Recommender.build(items, catalog=_catalog([100, 200]), index="Flat")
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "matches no item" in record.getMessage()


def test_a_full_catalogue_logs_no_warning(caplog):
    items = Embeddings(range(1, 9), _vectors(8))
    with caplog.at_level(logging.WARNING, logger="embrecall"):
        Recommender.build(items, catalog=_catalog(list(range(1, 10))), index="Flat")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- the real command --------------------------------------------------------------------------
def _command() -> list[str]:
    script = Path(sys.executable).with_name("embrecall")
    found = str(script) if script.exists() else shutil.which("embrecall")
    return [found] if found else [sys.executable, "-m", "embrecall"]


def _build(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([*_command(), "build", *map(str, argv)], capture_output=True, text=True)


def _refused(proc: subprocess.CompletedProcess, out: Path, *parts: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "RuntimeWarning" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return lines[0]


def test_cli_unterminated_quote(tmp_path):
    items = _csv(tmp_path / "i.csv", range(1, 6), _vectors(5))
    text = items.read_text().splitlines()
    text[3] = '58,"[0.1, 0.2, 0.3, 0.4'
    items.write_text("\n".join(text) + "\n")
    out = tmp_path / "art"
    _refused(_build("--items", items, "--out", out), out, str(items), "line 4", "quote")
    proc = _build("--items", items, "--out", out, "--on-bad-row", "skip", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("skipped 1 bad row of items (line 4): odd number of quote")
    assert embrecall.load(out).items.ids.tolist() == [1, 2, 4, 5]


def test_cli_overflowing_vector(tmp_path):
    vectors = _vectors(5)
    vectors[2] = [3e38, 3e38, 0.0, 0.0]
    items, out = _csv(tmp_path / "i.csv", [10, 20, 30, 40, 50], vectors), tmp_path / "art"
    _refused(_build("--items", items, "--out", out), out, str(items), "line 4 (id 30)", "large")
    proc = _build("--items", items, "--out", out, "--on-bad-row", "skip", "-q")
    assert proc.returncode == 0 and "RuntimeWarning" not in proc.stderr
    assert proc.stderr.startswith("skipped 1 bad row of items (line 4): vector is too large")


def test_cli_zero_vector_for_cosine(tmp_path):
    items, out = _csv(tmp_path / "i.csv", range(1, 9), _with_zero(8, 4)), tmp_path / "art"
    _refused(_build("--items", items, "--out", out), out, str(items), "line 6 (id 5)", "zeros")
    proc = _build("--items", items, "--out", out, "--on-bad-row", "skip", "-q")
    assert proc.returncode == 0
    assert proc.stderr.startswith("skipped 1 bad row of items (line 6): vector is all zeros")
    assert 5 not in embrecall.load(out).items.ids.tolist()


def test_cli_stray_string_id(tmp_path):
    items = _csv(tmp_path / "i.csv", ["1", "2", "x7", "4"], _vectors(4))
    out = tmp_path / "art"
    message = _refused(_build("--items", items, "--out", out), out, str(items), "line 4", "'x7'")
    assert "--id-type str" in message
    proc = _build("--items", items, "--out", out, "--id-type", "str", "-q")
    assert proc.returncode == 0, proc.stderr
    assert embrecall.load(out).items.ids.tolist() == ["1", "2", "x7", "4"]


def test_cli_skipped_rows_are_counted_in_words(tmp_path):
    vectors = _vectors(6)
    vectors[1] = vectors[3] = np.nan
    items, out = _csv(tmp_path / "i.csv", range(1, 7), vectors), tmp_path / "art"
    proc = _build("--items", items, "--out", out, "--on-bad-row", "skip", "-q")
    assert proc.returncode == 0
    assert proc.stderr.strip() == "skipped 2 bad rows of items (lines 3, 5)"


def test_cli_warns_of_a_partial_catalogue_unless_quiet(tmp_path):
    items = _csv(tmp_path / "i.csv", range(1, 9), _vectors(8))
    catalog = tmp_path / "movies.csv"
    catalog.write_text("movieId,title,genres\n1,A,Drama\n2,B,Comedy\n")
    proc = _build("--items", items, "--catalog", catalog, "--out", tmp_path / "a")
    assert proc.returncode == 0
    assert "has no entry for 6 of 8 items (e.g. 3, 4, 5, 6, 7, ...)" in proc.stderr
    quiet = _build("--items", items, "--catalog", catalog, "--out", tmp_path / "b", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
