"""word2vec / item2vec text reader."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from embrecall.errors import DimensionMismatchError, DuplicateIdError, InputFormatError
from embrecall.io import read_embeddings, word2vec

TOKENS = ["king", "queen", "1193", "</s>", "café"]


@pytest.mark.parametrize("trailing_space", [False, True])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_reads_tokens_and_vectors(tmp_path, make_data, write_w2v, trailing_space, line_end):
    _, vectors = make_data(5, 4)
    path = write_w2v(
        tmp_path / "e.vec", TOKENS, vectors, trailing_space=trailing_space, line_end=line_end
    )
    emb = read_embeddings(path)
    assert emb.id_kind == "str" and list(emb.ids) == TOKENS
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_numeric_tokens_stay_strings_unless_asked(tmp_path, make_data, write_w2v):
    _, vectors = make_data(3, 2)
    path = write_w2v(tmp_path / "items.txt", ["10", "20", "30"], vectors)
    emb = read_embeddings(path)
    assert list(emb.ids) == ["10", "20", "30"]
    assert emb.row_of(20) == 1  # an integer query still finds its token
    as_int = read_embeddings(path, id_type="int")
    assert as_int.id_kind == "int" and list(as_int.ids) == [10, 20, 30]


def test_int_ids_refuse_words(tmp_path, make_data, write_w2v):
    _, vectors = make_data(2, 2)
    path = write_w2v(tmp_path / "e.txt", ["10", "king"], vectors)
    with pytest.raises(InputFormatError, match=r"line 3: id 'king' is not an integer"):
        read_embeddings(path, id_type="int")


def test_without_header(tmp_path, make_data, write_w2v):
    _, vectors = make_data(3, 5)
    emb = read_embeddings(write_w2v(tmp_path / "glove.txt", TOKENS[:3], vectors, header=False))
    assert list(emb.ids) == TOKENS[:3]
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_tabs_multiple_spaces_and_blank_lines(tmp_path, write_text):
    path = write_text(tmp_path / "e.vec", ["2 3", "a\t1 2  3", "", "b 4 5 6 ", ""])
    emb = read_embeddings(path)
    assert list(emb.ids) == ["a", "b"]
    np.testing.assert_array_equal(emb.vectors, [[1, 2, 3], [4, 5, 6]])


def test_header_count_mismatch(tmp_path, write_text):
    path = write_text(tmp_path / "e.vec", ["3 2", "a 1 2", "b 3 4"])
    expected = f"{path}: the header (line 1) says 3 vectors, the file has 2"
    with pytest.raises(InputFormatError, match=re.escape(expected)):
        read_embeddings(path)
    with pytest.raises(InputFormatError, match="says 3 vectors"):
        read_embeddings(path, on_bad_row="skip")


def test_wrong_dimension_names_line_and_numbers(tmp_path, write_text):
    path = write_text(tmp_path / "e.vec", ["3 3", "a 1 2 3", "b 1 2", "c 1 2 3"])
    expected = f"{path}: line 3: vector has 2 values, expected 3 (from the header, line 1)"
    with pytest.raises(DimensionMismatchError, match=re.escape(expected)):
        read_embeddings(path)


def test_wrong_dimension_without_header(tmp_path, write_text):
    path = write_text(tmp_path / "e.txt", ["a 1 2 3", "b 1 2"])
    with pytest.raises(
        DimensionMismatchError, match=r"line 2: vector has 2 values, expected 3 \(from line 1\)"
    ):
        read_embeddings(path)


def test_unparseable_value(tmp_path, write_text):
    path = write_text(tmp_path / "e.vec", ["2 2", "a 1 2", "b 1 x"])
    with pytest.raises(InputFormatError, match=r"line 3: not a token followed by numbers: 'b 1 x'"):
        read_embeddings(path)


def test_skip_mode(tmp_path, write_text):
    path = write_text(tmp_path / "e.vec", ["5 2", "a 1 2", "b 1", "c x 2", "a 5 6", "d 7 8"])
    emb = read_embeddings(path, on_bad_row="skip")
    assert list(emb.ids) == ["a", "d"]
    assert [(s.line, s.reason.split(":")[0]) for s in emb.skipped] == [
        (3, "vector has 1 values, expected 2 (from the header, line 1)"),
        (4, "not a token followed by numbers"),
        (5, "duplicate id 'a'"),
    ]


def test_duplicate_token(tmp_path, write_text):
    path = write_text(tmp_path / "e.vec", ["2 1", "a 1", "a 2"])
    with pytest.raises(DuplicateIdError, match=r"duplicate id 'a' at line 2 and line 3"):
        read_embeddings(path)


def test_empty_and_header_only(tmp_path, write_text):
    empty = tmp_path / "e.vec"
    empty.write_bytes(b"")
    with pytest.raises(InputFormatError, match=r"no embeddings \(the file is empty\)"):
        read_embeddings(empty)
    with pytest.raises(InputFormatError, match=r"no embeddings \(the file has no vectors\)"):
        read_embeddings(write_text(tmp_path / "h.vec", ["0 3"]))


def test_not_utf8(tmp_path):
    path = tmp_path / "e.vec"
    path.write_bytes(b"2 1\nok 1\ncaf\xe9 2\n")
    with pytest.raises(InputFormatError, match=r"line 3: not valid UTF-8"):
        read_embeddings(path)


def test_gzip_and_many_blocks(tmp_path, monkeypatch, make_data):
    monkeypatch.setattr(word2vec, "_BLOCK_BYTES", 100)
    _, vectors = make_data(50, 3)
    tokens = [f"tok{i}" for i in range(50)]
    text = "50 3\n" + "".join(
        t + " " + " ".join(map(repr, map(float, v))) + "\n"
        for t, v in zip(tokens, vectors, strict=True)
    )
    path = tmp_path / "e.vec.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    emb = read_embeddings(path)
    assert list(emb.ids) == tokens
    np.testing.assert_array_equal(emb.vectors, vectors)
    lines = text.splitlines()
    lines[40] = "tok39 1 2"  # line 41 of the file
    (tmp_path / "bad.vec").write_text("\n".join(lines) + "\n")
    with pytest.raises(DimensionMismatchError, match=r"line 41: vector has 2 values"):
        read_embeddings(tmp_path / "bad.vec")


def test_regular_and_irregular_blocks_mix(tmp_path, monkeypatch, write_text):
    """Small blocks: some take the regular path, the one with a tab the general one."""
    monkeypatch.setattr(word2vec, "_BLOCK_BYTES", 16)
    rows = [f"t{i} {i}.5 {i}.25" for i in range(30)]
    rows[17] = "t17\t17.5 17.25"
    path = write_text(tmp_path / "e.vec", ["30 2", *rows])
    emb = read_embeddings(path)
    assert list(emb.ids) == [f"t{i}" for i in range(30)]
    np.testing.assert_array_equal(emb.vectors[:, 0], np.arange(30) + 0.5)
