"""Vectors faiss cannot score: squared norms beyond float32, and (for cosine) all-zero vectors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from embrecall.embeddings import Embeddings, check_query_vectors
from embrecall.errors import InvalidVectorError
from embrecall.io import read_embeddings

pytestmark = pytest.mark.filterwarnings("error")  # no numpy RuntimeWarning may escape

BIG = [3e38, 3e38, 0.5]  # every value finite in float32, the squared norm is not


def _vectors(big_row: int = 2) -> np.ndarray:
    vectors = np.array([[0.1, 0.2, 0.3]] * 4, dtype=np.float32)
    vectors[big_row] = BIG
    return vectors


def test_overflowing_vector_is_refused_naming_file_line_and_id(tmp_path, write_csv):
    path = write_csv(tmp_path / "e.csv", [10, 20, 58, 40], _vectors())
    with pytest.raises(InvalidVectorError) as e:
        read_embeddings(path)
    assert str(e.value).startswith(f"{path}: line 4 (id 58): vector is too large")
    assert "overflows float32" in str(e.value)


@pytest.mark.parametrize("fmt", ["spark_csv", "parquet", "npy", "word2vec"])
def test_overflowing_vector_is_skipped_on_request(tmp_path, write_csv, write_pq, write_w2v, fmt):
    ids, vectors = [10, 20, 58, 40], _vectors()
    if fmt == "spark_csv":
        path = write_csv(tmp_path / "e.csv", ids, vectors)
    elif fmt == "parquet":
        path = write_pq(tmp_path / "e.parquet", ids, vectors)
    elif fmt == "npy":
        path = tmp_path / "e.npy"
        np.save(path, vectors)
        np.save(tmp_path / "e_ids.npy", np.array(ids))
    else:
        path = write_w2v(tmp_path / "e.vec", [str(i) for i in ids], vectors)
    with pytest.raises(InvalidVectorError, match="too large"):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert [str(i) for i in emb.ids.tolist()] == ["10", "20", "40"]
    assert len(emb.skipped) == 1 and "overflows float32" in emb.skipped[0].reason


def test_large_vectors_that_fit_are_accepted():
    # 1e19 squared is 1e38: three of them still fit below float32's 3.4e38
    emb = Embeddings([1, 2], np.array([[1e19, 1e19, 1e19], [1.0, 2.0, 3.0]], dtype=np.float32))
    assert len(emb) == 2


@pytest.mark.parametrize("query", [BIG, [BIG, [0.1, 0.2, 0.3]]], ids=["single", "batch"])
def test_overflowing_query_vector_is_refused(query):
    with pytest.raises(InvalidVectorError, match="too large"):
        check_query_vectors(query, 3)


def test_zero_query_vector_is_refused_only_when_cosine_needs_a_direction():
    zero = [0.0, 0.0, 0.0]
    with pytest.raises(InvalidVectorError, match="all zeros"):
        check_query_vectors(zero, 3, nonzero=True)
    with pytest.raises(InvalidVectorError, match=r"vector 1 .*all zeros"):
        check_query_vectors([[1.0, 0.0, 0.0], zero], 3, nonzero=True)
    arr, single = check_query_vectors(zero, 3)  # inner product / l2: a valid (if dull) query
    assert single and not arr.any()


def test_zero_rows_and_without_rows_keep_lines(tmp_path, write_csv):
    vectors = np.array([[0.1, 0.2], [0.0, -0.0], [0.3, 0.4]], dtype=np.float32)
    emb = read_embeddings(write_csv(tmp_path / "e.csv", [1, 2, 3], vectors))
    assert emb.zero_rows().tolist() == [False, True, False]
    with pytest.raises(InvalidVectorError, match=r"e\.csv: line 3 \(id 2\): vector is all zeros"):
        emb.require_nonzero("cosine (similar_items)")
    kept = emb.without_rows(emb.zero_rows(), "vector is all zeros")
    assert kept.ids.tolist() == [1, 3] and [s.line for s in kept.skipped] == [3]
    assert kept.describe_row(1).endswith("line 4 (id 3)")


def test_no_runtime_warning_on_huge_values_beyond_float32(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", ["id,features", '1,"[1e39, 0.5]"', '2,"[0.1, 0.2]"'])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidVectorError, match="line 2"):
            read_embeddings(path)
