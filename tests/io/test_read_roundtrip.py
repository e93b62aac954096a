"""Property: whatever ids and vectors are written in a format, reading gives them back exactly."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from embrecall.io import read_embeddings

_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_INTEGER = re.compile(r"-?[0-9]+")

int_ids = st.lists(
    st.integers(-(2**63), 2**63 - 1).filter(lambda i: i != -1), min_size=1, max_size=25, unique=True
)
# text ids as users have them: no surrounding blanks, no control characters, not integers
words = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=8,
).filter(lambda s: s == s.strip() and not _INTEGER.fullmatch(s))
str_ids = st.lists(words, min_size=1, max_size=25, unique=True)


@st.composite
def embeddings(draw, ids_strategy=None):
    ids = draw(ids_strategy if ids_strategy is not None else st.one_of(int_ids, str_ids))
    dim = draw(st.integers(1, 8))
    # bounded so that a vector's squared norm fits in float32 (dim <= 8): larger ones are refused
    finite = st.floats(-(2.0**60), 2.0**60, width=32, allow_nan=False, allow_infinity=False)
    vectors = draw(hnp.arrays(np.float32, (len(ids), dim), elements=finite))
    return ids, vectors


def _check(emb, ids, vectors) -> None:
    assert emb.ids.tolist() == list(ids)
    np.testing.assert_array_equal(emb.vectors, vectors)
    assert emb.vectors.dtype == np.float32


@_SETTINGS
@given(data=embeddings(), index=st.booleans(), sep=st.sampled_from([", ", ","]), gz=st.booleans())
def test_spark_csv_roundtrip(data, index, sep, gz, write_csv):
    ids, vectors = data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("e.csv.gz" if gz else "e.csv")
        write_csv(path, ids, vectors, index=index, sep=sep, compress=gz)
        _check(read_embeddings(path), ids, vectors)


@_SETTINGS
@given(data=embeddings(), kind=st.sampled_from(["list", "double", "fixed", "vector", "text"]))
def test_parquet_roundtrip(data, kind, write_pq):
    ids, vectors = data
    with tempfile.TemporaryDirectory() as tmp:
        path = write_pq(Path(tmp) / "e.parquet", ids, vectors, kind=kind)
        _check(read_embeddings(path), ids, vectors)


@_SETTINGS
@given(data=embeddings(), how=st.sampled_from(["npy", "txt", "memory"]))
def test_npy_roundtrip(data, how):
    ids, vectors = data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.npy"
        np.save(path, vectors)
        if how == "npy":
            np.save(Path(tmp) / "v_ids.npy", np.array(ids))
            emb = read_embeddings(path)
        elif how == "txt":
            (Path(tmp) / "ids.txt").write_text("\n".join(map(str, ids)) + "\n", encoding="utf-8")
            emb = read_embeddings(path, ids=Path(tmp) / "ids.txt")
        else:
            emb = read_embeddings(path, ids=ids)
        _check(emb, ids, vectors)


@pytest.mark.parametrize("id_type", ["str", "int"])
@_SETTINGS
@given(data=st.data(), trailing_space=st.booleans(), header=st.booleans())
def test_word2vec_roundtrip(data, trailing_space, header, id_type, write_w2v):
    # tokens are split on ASCII whitespace, so they cannot hold any
    tokens = str_ids.filter(lambda ts: not any(re.search(r"[ \t\n\v\f\r]", t) for t in ts))
    ids, vectors = data.draw(embeddings(int_ids if id_type == "int" else tokens))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.vec"
        write_w2v(
            path, [str(i) for i in ids], vectors, header=header, trailing_space=trailing_space
        )
        _check(read_embeddings(path, id_type=id_type), ids, vectors)
