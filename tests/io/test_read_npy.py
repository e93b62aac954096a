"""npy reader: vectors in a .npy file, ids beside it, never unpickled."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from embrecall.errors import InputFormatError, InvalidVectorError
from embrecall.io import read_embeddings


@pytest.fixture
def saved(tmp_path, make_data):
    ids, vectors = make_data(4, 3)
    path = tmp_path / "vecs.npy"
    np.save(path, vectors)
    return path, ids, vectors


def test_ids_from_npy_file(saved, tmp_path):
    path, ids, vectors = saved
    np.save(tmp_path / "ids.npy", ids)
    emb = read_embeddings(path, ids=tmp_path / "ids.npy")
    np.testing.assert_array_equal(emb.ids, ids)
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_ids_from_text_file(saved, tmp_path):
    path, _, _ = saved
    (tmp_path / "ids.txt").write_text("7\n8\n9\n10\n")
    assert list(read_embeddings(path, ids=tmp_path / "ids.txt").ids) == [7, 8, 9, 10]
    (tmp_path / "tok.txt").write_text("a\nb\nc\nd")
    assert list(read_embeddings(path, ids=str(tmp_path / "tok.txt")).ids) == ["a", "b", "c", "d"]


def test_ids_in_memory(saved):
    path, _, _ = saved
    assert list(read_embeddings(path, ids=["w", "x", "y", "z"]).ids) == ["w", "x", "y", "z"]
    assert read_embeddings(path, ids=np.array([3, 4, 5, 6], np.uint32)).id_kind == "int"
    assert list(read_embeddings(path, ids=[3, 4, 5, 6], id_type="str").ids) == ["3", "4", "5", "6"]


@pytest.mark.parametrize("name", ["vecs_ids.npy", "vecs.ids.npy", "vecs_ids.txt"])
def test_sibling_ids_file(saved, tmp_path, name):
    path, ids, _ = saved
    if name.endswith(".npy"):
        np.save(tmp_path / name, ids)
    else:
        (tmp_path / name).write_text("\n".join(map(str, ids)) + "\n")
    np.testing.assert_array_equal(read_embeddings(path).ids, ids)


def test_row_numbers_when_no_ids(saved):
    path, _, _ = saved
    np.testing.assert_array_equal(read_embeddings(path).ids, [0, 1, 2, 3])


def test_string_ids_saved_as_unicode_array(saved, tmp_path):
    path, _, _ = saved
    np.save(tmp_path / "ids.npy", np.array(["a", "bb", "ccc", "d"]))
    assert list(read_embeddings(path, ids=tmp_path / "ids.npy").ids) == ["a", "bb", "ccc", "d"]


def test_float64_and_int_vectors_become_float32(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.arange(6, dtype=np.float64).reshape(3, 2))
    emb = read_embeddings(path)
    assert emb.vectors.dtype == np.float32 and emb.vectors.flags.writeable
    np.save(path, np.arange(6, dtype=np.int16).reshape(2, 3))
    assert read_embeddings(path).dim == 3


def test_id_count_mismatch(saved):
    path, _, _ = saved
    with pytest.raises(InputFormatError, match=r"3 ids \(from ids=\) for 4 vectors"):
        read_embeddings(path, ids=[1, 2, 3])


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.array([[1.0, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(
        InputFormatError, match="pickled Python objects, which embrecall never loads"
    ):
        read_embeddings(path)


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "v.npy"
    path.write_bytes(pickle.dumps({"vectors": [1.0]}))
    with pytest.raises(InputFormatError, match="pickled"):
        read_embeddings(path)


def test_pickled_ids_are_refused(saved, tmp_path):
    path, _, _ = saved
    np.save(tmp_path / "ids.npy", np.array(["a", 1, 2, 3], dtype=object), allow_pickle=True)
    with pytest.raises(InputFormatError, match="not pickled objects"):
        read_embeddings(path, ids=tmp_path / "ids.npy")


def test_npz_and_garbage(tmp_path):
    npz = tmp_path / "v.npy"
    with open(npz, "wb") as f:
        np.savez(f, vectors=np.ones((2, 2)))
    with pytest.raises(InputFormatError, match=r"\.npz archive \(arrays: vectors\)"):
        read_embeddings(npz)
    bad = tmp_path / "b.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(InputFormatError, match="not a valid .npy file"):
        read_embeddings(bad)


def test_wrong_shape_and_dtype(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.ones(5, np.float32))
    with pytest.raises(InvalidVectorError, match="expected a 2-D array"):
        read_embeddings(path)
    np.save(path, np.array([["a", "b"]]))
    with pytest.raises(InputFormatError, match="expected an array of numbers"):
        read_embeddings(path)


def test_nan_row_and_skip(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]], np.float32))
    with pytest.raises(InvalidVectorError, match=r"row 2 \(id 1\): vector holds NaN"):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert list(emb.ids) == [0, 2] and emb.skipped[0].line == 2


def test_bad_ids_in_text_file(saved, tmp_path):
    path, _, _ = saved
    (tmp_path / "ids.txt").write_text("1\n2\n-1\n3\n")
    with pytest.raises(InputFormatError, match="id -1 is reserved"):
        read_embeddings(path, ids=tmp_path / "ids.txt")
    (tmp_path / "ids.txt").write_bytes(b"1\n2\n\xff\n3\n")
    with pytest.raises(InputFormatError, match="line 3: not valid UTF-8"):
        read_embeddings(path, ids=tmp_path / "ids.txt")
