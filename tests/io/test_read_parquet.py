"""Parquet reader: files and Spark part directories; list, fixed-size list, Spark ML vectors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embrecall.errors import DimensionMismatchError, DuplicateIdError, InputFormatError
from embrecall.io import read_embeddings


@pytest.mark.parametrize("kind", ["list", "double", "fixed", "vector", "text"])
def test_vector_column_kinds(tmp_path, make_data, write_pq, kind):
    ids, vectors = make_data(5, 3)
    emb = read_embeddings(write_pq(tmp_path / "e.parquet", ids, vectors, kind=kind))
    np.testing.assert_array_equal(emb.ids, ids)
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_string_ids_and_column_names(tmp_path, make_data, write_pq):
    _, vectors = make_data(3, 2)
    path = write_pq(tmp_path / "e.pq", ["a", "b", "c"], vectors, columns=("item", "emb"))
    emb = read_embeddings(path, id_column="item", vector_column="emb")
    assert list(emb.ids) == ["a", "b", "c"]


def test_string_ids_stay_strings_even_if_numeric(tmp_path, make_data, write_pq):
    _, vectors = make_data(2, 2)
    emb = read_embeddings(write_pq(tmp_path / "e.parquet", ["1", "2"], vectors))
    assert emb.id_kind == "str"
    assert read_embeddings(tmp_path / "e.parquet", id_type="int").id_kind == "int"


def test_spark_output_directory(tmp_path, make_data, write_pq):
    ids, vectors = make_data(6, 3)
    out = tmp_path / "factors"
    out.mkdir()
    write_pq(out / "part-00001-abc.snappy.parquet", ids[3:], vectors[3:])
    write_pq(out / "part-00000-abc.snappy.parquet", ids[:3], vectors[:3])
    (out / "_SUCCESS").write_bytes(b"")
    (out / ".part-00000-abc.snappy.parquet.crc").write_bytes(b"junk")
    (out / "_committed_123").write_text("{}")
    emb = read_embeddings(out)
    np.testing.assert_array_equal(emb.ids, ids)
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_directory_without_parts(tmp_path):
    (tmp_path / "_SUCCESS").write_bytes(b"")
    with pytest.raises(InputFormatError, match=r"without \*\.parquet part files"):
        read_embeddings(tmp_path)
    with pytest.raises(InputFormatError, match=r"no \*\.parquet part files"):
        read_embeddings(tmp_path, format="parquet")


def test_ragged_lists_name_the_row(tmp_path, write_pq):
    path = write_pq(tmp_path / "e.parquet", [1, 2, 3], [[1.0, 2.0], [3.0, 4.0], [5.0]])
    expected = f"{path}: row 3: features has 1 values, expected 2 (from row 1)"
    with pytest.raises(DimensionMismatchError, match=re.escape(expected)):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert list(emb.ids) == [1, 2] and emb.skipped[0].line == 3


def test_null_vector_names_the_row(tmp_path, write_pq):
    path = write_pq(tmp_path / "e.parquet", [1, 2], [[1.0, 2.0], None])
    with pytest.raises(InputFormatError, match=r"row 2: features is null"):
        read_embeddings(path)


def test_null_element_names_the_row(tmp_path):
    path = tmp_path / "e.parquet"
    column = pa.array([[1.0, 2.0], [3.0, None]], pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": [1, 2], "features": column}), path)
    with pytest.raises(InputFormatError, match=r"row 2: features holds a null value"):
        read_embeddings(path)


def test_null_spark_vector_and_sparse_vector(tmp_path, vector_column):
    path = tmp_path / "e.parquet"
    column = vector_column([[1.0, 2.0], None, [3.0, 4.0], [5.0, 6.0]], sparse_rows=[3])
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "features": column}), path)
    with pytest.raises(InputFormatError, match=r"row 2: features is null"):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert list(emb.ids) == [1, 3]
    assert [s.line for s in emb.skipped] == [2, 4]
    assert "sparse vector" in emb.skipped[1].reason


def test_missing_column(tmp_path, make_data, write_pq):
    ids, vectors = make_data(2, 2)
    path = write_pq(tmp_path / "e.parquet", ids, vectors, columns=("user", "features"))
    with pytest.raises(
        InputFormatError, match=r"no column 'id' \(columns found: 'user', 'features'\)"
    ):
        read_embeddings(path)


def test_wrong_column_type(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"id": [1], "features": [1.5]}), path)
    with pytest.raises(
        InputFormatError, match=r"column 'features' has type double; expected a list"
    ):
        read_embeddings(path)


def test_duplicate_id_and_uint64_overflow(tmp_path, write_pq):
    path = write_pq(tmp_path / "d.parquet", [4, 4], [[1.0], [2.0]])
    with pytest.raises(DuplicateIdError, match=r"duplicate id 4 at row 1 and row 2"):
        read_embeddings(path)
    big = tmp_path / "u.parquet"
    ids = pa.array([1, 2**63], pa.uint64())
    pq.write_table(pa.table({"id": ids, "features": pa.array([[1.0], [2.0]])}), big)
    with pytest.raises(
        InputFormatError, match=r"row 2: id 9223372036854775808 does not fit in int64"
    ):
        read_embeddings(big)


def test_null_id(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"id": pa.array([1, None]), "features": [[1.0], [2.0]]}), path)
    with pytest.raises(InputFormatError, match=r"row 2: id is missing"):
        read_embeddings(path)


def test_header_only_equivalent_is_empty(tmp_path):
    path = tmp_path / "e.parquet"
    empty = pa.table(
        {"id": pa.array([], pa.int64()), "features": pa.array([], pa.list_(pa.float32()))}
    )
    pq.write_table(empty, path)
    with pytest.raises(InputFormatError, match="no embeddings"):
        read_embeddings(path)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "e.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(InputFormatError, match="not a readable parquet file"):
        read_embeddings(path)


def test_part_files_with_differing_id_types_and_partitions(tmp_path):
    out = tmp_path / "out"
    for i, (ids, id_type) in enumerate([([1, 2], pa.int32()), ([3], pa.int64())]):
        part = out / f"day={i}"
        part.mkdir(parents=True)
        table = pa.table(
            {"id": pa.array(ids, id_type), "features": pa.array([[float(x)] for x in ids])}
        )
        pq.write_table(table, part / f"part-{i}.parquet")
    emb = read_embeddings(out)
    assert emb.ids.tolist() == [1, 2, 3] and emb.vectors[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_categorical_string_ids(tmp_path):
    frame = pd.DataFrame({"id": pd.Categorical(["b", "a"]), "features": [[1.0], [2.0]]})
    path = tmp_path / "e.parquet"
    frame.to_parquet(path)
    assert read_embeddings(path).ids.tolist() == ["b", "a"]


@pytest.mark.parametrize(
    "column_type", [pa.list_(pa.int64()), pa.large_list(pa.float64())], ids=["ints", "large"]
)
def test_other_list_types(tmp_path, column_type):
    path = tmp_path / "e.parquet"
    pq.write_table(
        pa.table({"id": [1, 2], "features": pa.array([[1, 2], [3, 4]], column_type)}), path
    )
    np.testing.assert_array_equal(read_embeddings(path).vectors, [[1, 2], [3, 4]])
