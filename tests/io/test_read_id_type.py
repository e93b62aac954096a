"""``id_type``: one stray non-integer id must not turn an integer id space into strings."""

from __future__ import annotations

import numpy as np
import pytest

from embrecall.errors import InputFormatError
from embrecall.io import read_embeddings

STRAY = ["10", "20", "abc", "40"]  # line 4 (header = line 1) holds the stray id


@pytest.mark.parametrize("index", [False, True], ids=["plain", "pandas-index"])
def test_a_stray_id_in_an_integer_csv_column_is_refused(tmp_path, make_data, write_csv, index):
    _, vectors = make_data(4, 3)
    path = write_csv(tmp_path / "e.csv", STRAY, vectors, index=index)
    with pytest.raises(InputFormatError) as e:
        read_embeddings(path)
    message = str(e.value)
    assert message.startswith(f"{path}: line 4: id 'abc' is not an integer")
    assert "--id-type str" in message and "\n" not in message


def test_id_type_str_reads_the_mix_as_text(tmp_path, make_data, write_csv):
    _, vectors = make_data(4, 3)
    emb = read_embeddings(write_csv(tmp_path / "e.csv", STRAY, vectors), id_type="str")
    assert emb.id_kind == "str" and emb.ids.tolist() == STRAY


def test_skip_drops_the_stray_row_and_keeps_integer_ids(tmp_path, make_data, write_csv):
    _, vectors = make_data(4, 3)
    emb = read_embeddings(write_csv(tmp_path / "e.csv", STRAY, vectors), on_bad_row="skip")
    assert emb.id_kind == "int" and emb.ids.tolist() == [10, 20, 40]
    assert [s.line for s in emb.skipped] == [4] and "'abc'" in emb.skipped[0].reason


def test_auto_keeps_its_meaning_for_uniform_columns(tmp_path, make_data, write_csv):
    _, vectors = make_data(3, 2)
    ints = read_embeddings(write_csv(tmp_path / "i.csv", ["1", "2", "3"], vectors))
    words = read_embeddings(write_csv(tmp_path / "w.csv", ["a", "b", "c"], vectors))
    assert ints.id_kind == "int" and words.id_kind == "str"


def test_a_stray_id_in_an_ids_text_file_is_refused(tmp_path, make_data):
    _, vectors = make_data(4, 3)
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "v_ids.txt").write_text("\n".join(STRAY) + "\n")
    with pytest.raises(InputFormatError, match=r"row 3: id 'abc' is not an integer.*--id-type str"):
        read_embeddings(tmp_path / "v.npy")
    assert read_embeddings(tmp_path / "v.npy", id_type="str").ids.tolist() == STRAY


def test_word2vec_tokens_and_id_type(tmp_path, make_data, write_w2v):
    _, vectors = make_data(4, 3)
    path = write_w2v(tmp_path / "e.vec", STRAY, vectors)
    assert read_embeddings(path).ids.tolist() == STRAY  # tokens are text unless asked
    with pytest.raises(InputFormatError, match=r"line 4: id 'abc' is not an integer"):
        read_embeddings(path, id_type="int")


def test_parquet_id_type(tmp_path, make_data, write_pq):
    _, vectors = make_data(4, 3)
    path = write_pq(tmp_path / "e.parquet", STRAY, vectors)
    assert read_embeddings(path).ids.tolist() == STRAY  # a string column keeps its type
    with pytest.raises(InputFormatError, match=r"row 3: id 'abc' is not an integer"):
        read_embeddings(path, id_type="int")
    ints = write_pq(tmp_path / "i.parquet", [1, 2, 3, 4], vectors)
    assert read_embeddings(ints, id_type="str").ids.tolist() == ["1", "2", "3", "4"]
