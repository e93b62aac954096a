"""Spark CSV reader: the layout pandas writes, its variants, and every way a file goes wrong."""

from __future__ import annotations

import re

import numpy as np
import pytest

from embrecall.embeddings import SkippedRow
from embrecall.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InputFormatError,
    InvalidVectorError,
)
from embrecall.io import _fast_csv, read_embeddings, spark_csv

HEADER = "id,features"


def test_reads_what_pandas_writes(tmp_path, make_data, write_csv):
    ids, vectors = make_data(6, 5)
    emb = read_embeddings(write_csv(tmp_path / "e.csv", ids, vectors))
    assert emb.ids.dtype == np.int64
    np.testing.assert_array_equal(emb.ids, ids)
    np.testing.assert_array_equal(emb.vectors, vectors)  # repr of float32 round-trips exactly
    assert emb.vectors.dtype == np.float32 and emb.vectors.flags.c_contiguous
    assert emb.skipped == ()


@pytest.mark.parametrize("index", [False, True], ids=["plain", "pandas-index"])
@pytest.mark.parametrize("sep", [", ", ","], ids=["spaced", "compact"])
def test_layout_variants(tmp_path, make_data, write_csv, index, sep):
    ids, vectors = make_data(4, 3)
    emb = read_embeddings(write_csv(tmp_path / "e.csv", ids, vectors, index=index, sep=sep))
    np.testing.assert_array_equal(emb.ids, ids)
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_exponents_and_crlf(tmp_path, write_text):
    path = write_text(
        tmp_path / "e.csv",
        [HEADER, '1,"[1e-05, -2.5E+03, 3]"', '2,"[0.5,1e2,-0.0]"'],
        end="\r\n",
    )
    emb = read_embeddings(path)
    np.testing.assert_allclose(emb.vectors, [[1e-05, -2500.0, 3.0], [0.5, 100.0, 0.0]])


def test_last_line_without_newline(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text(f'{HEADER}\n1,"[1.0, 2.0]"\n2,"[3.0, 4.0]"')
    np.testing.assert_array_equal(read_embeddings(path).vectors, [[1, 2], [3, 4]])


def test_string_ids(tmp_path, make_data, write_csv):
    _, vectors = make_data(3, 2)
    ids = ["3f2a-uuid", "item_7", "id-42"]
    emb = read_embeddings(write_csv(tmp_path / "e.csv", ids, vectors))
    assert emb.id_kind == "str"
    assert list(emb.ids) == ids


def test_string_ids_with_an_integer_among_them_need_id_type_str(tmp_path, make_data, write_csv):
    _, vectors = make_data(3, 2)
    path = write_csv(tmp_path / "e.csv", ["3f2a-uuid", "item_7", "42"], vectors)
    with pytest.raises(InputFormatError, match=r"line 2: id '3f2a-uuid' .*--id-type str"):
        read_embeddings(path)
    emb = read_embeddings(path, id_type="str")
    assert emb.id_kind == "str" and list(emb.ids) == ["3f2a-uuid", "item_7", "42"]


def test_quoted_string_ids_with_commas(tmp_path, make_data, write_csv):
    _, vectors = make_data(2, 2)
    ids = ["Heat, 1995", 'say "hi"']
    emb = read_embeddings(write_csv(tmp_path / "e.csv", ids, vectors))
    assert list(emb.ids) == ids
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_id_type_forces_the_kind(tmp_path, make_data, write_csv):
    ids, vectors = make_data(3, 2)
    path = write_csv(tmp_path / "e.csv", ids, vectors)
    assert list(read_embeddings(path, id_type="str").ids) == [str(i) for i in ids]
    words = write_csv(tmp_path / "w.csv", ["a", "b", "c"], vectors)
    with pytest.raises(InputFormatError, match=r"line 2: id 'a' is not an integer"):
        read_embeddings(words, id_type="int")


def test_column_names_are_configurable(tmp_path, make_data, write_csv):
    ids, vectors = make_data(3, 2)
    path = write_csv(tmp_path / "e.csv", ids, vectors, columns=("user", "vec"))
    emb = read_embeddings(path, id_column="user", vector_column="vec")
    np.testing.assert_array_equal(emb.ids, ids)


def test_missing_column_names_it_and_the_columns_found(tmp_path, make_data, write_csv):
    ids, vectors = make_data(3, 2)
    path = write_csv(tmp_path / "e.csv", ids, vectors, columns=("user", "vec"))
    with pytest.raises(InputFormatError, match=r"no column 'id' \(columns found: 'user', 'vec'\)"):
        read_embeddings(path)


@pytest.mark.parametrize(
    "cell",
    ['"[0.1, abc]"', '"0.1, 0.2"', '"[0.1, 0.2"', '"[0.1,, 0.2]"', '"[]"', '"[[0.1, 0.2]]"', ""],
    ids=["word", "no-brackets", "unclosed", "empty-value", "empty", "nested", "missing"],
)
def test_malformed_features_name_the_line(tmp_path, write_text, cell):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0, 2.0]"', '2,"[3.0, 4.0]"', f"3,{cell}"])
    with pytest.raises(InputFormatError, match=r"e\.csv: line 4: features is not a JSON array"):
        read_embeddings(path)


def test_malformed_message_quotes_the_cell(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0, 2.0]"', '2,"[0.1, abc]"'])
    expected = f"{path}: line 3: features is not a JSON array of numbers: '[0.1, abc]'"
    with pytest.raises(InputFormatError, match=re.escape(expected)):
        read_embeddings(path)


def test_mixed_dimensions_name_the_line_and_both_dims(tmp_path, write_text):
    path = write_text(
        tmp_path / "e.csv", [HEADER, '1,"[1.0, 2.0, 3.0]"', '2,"[1.0, 2.0, 3.0]"', '3,"[1.0, 2.0]"']
    )
    expected = f"{path}: line 4: features has 2 values, expected 3 (from line 2)"
    with pytest.raises(DimensionMismatchError, match=re.escape(expected)):
        read_embeddings(path)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e39"])
def test_nan_and_inf_are_refused_with_the_line(tmp_path, write_text, value):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0, 2.0]"', f'2,"[{value}, 2.0]"'])
    with pytest.raises(InvalidVectorError, match=r"line 3 \(id 2\): vector holds NaN or infinity"):
        read_embeddings(path)


def test_duplicate_id_is_named(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '7,"[1.0]"', '8,"[2.0]"', '7,"[3.0]"'])
    with pytest.raises(DuplicateIdError, match=r"duplicate id 7 at line 2 and line 4"):
        read_embeddings(path)


def test_reserved_id_minus_one(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0]"', '-1,"[2.0]"'])
    with pytest.raises(InputFormatError, match=r"line 3 \(id -1\): id -1 is reserved"):
        read_embeddings(path)


def test_id_beyond_int64_is_named(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0]"', '9223372036854775808,"[2.0]"'])
    with pytest.raises(
        InputFormatError, match=r"line 3: id 9223372036854775808 does not fit in int64"
    ):
        read_embeddings(path)


def test_empty_id_is_refused(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0]"', ',"[2.0]"'])
    with pytest.raises(InputFormatError, match=r"line 3: id is empty"):
        read_embeddings(path)


def test_empty_file(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"")
    with pytest.raises(InputFormatError, match=r"no embeddings \(the file is empty\)"):
        read_embeddings(path)


def test_header_only(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER])
    with pytest.raises(InputFormatError, match=r"no embeddings \(the file has only a header\)"):
        read_embeddings(path)


@pytest.mark.parametrize("line", [1, 3])
def test_not_utf8_says_so_with_the_line(tmp_path, line):
    rows = [HEADER.encode(), b'1,"[1.0]"', b'2,"[2.0]"']
    rows[line - 1] = b'caf\xe9,"[1.0]"' if line > 1 else b"id,f\xe9atures"
    path = tmp_path / "e.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(InputFormatError, match=rf"line {line}: not valid UTF-8"):
        read_embeddings(path)


def test_gzip(tmp_path, make_data, write_csv):
    ids, vectors = make_data(5, 3)
    emb = read_embeddings(write_csv(tmp_path / "e.csv.gz", ids, vectors, compress=True))
    np.testing.assert_array_equal(emb.vectors, vectors)


def test_blank_lines_are_ignored_and_lines_still_count(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0, 2.0]"', "", '2,"[3.0]"', ""])
    with pytest.raises(DimensionMismatchError, match=r"line 4: features has 1 values"):
        read_embeddings(path)


def test_row_with_too_many_fields_names_its_line(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0]"', '2,"[2.0]",extra', '3,"[3.0]"'])
    with pytest.raises(InputFormatError, match=r"line 3: expected 2 fields, found 3"):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert list(emb.ids) == [1, 3]
    assert emb.skipped[0].line == 3


def test_skip_mode_drops_and_reports_bad_rows(tmp_path, write_text):
    path = write_text(
        tmp_path / "e.csv",
        [
            HEADER,
            '1,"[1.0, 2.0]"',
            '2,"[1.0]"',  # line 3: wrong dimension
            '3,"[x, 2.0]"',  # line 4: unparseable
            '4,"[3.0, 4.0]"',
            '1,"[5.0, 6.0]"',  # line 6: repeated id
            '5,"[nan, 1.0]"',  # line 7: NaN
            '-1,"[1.0, 1.0]"',  # line 8: reserved id
            '6,"[7.0, 8.0]"',
        ],
    )
    emb = read_embeddings(path, on_bad_row="skip")
    assert list(emb.ids) == [1, 4, 6]
    np.testing.assert_array_equal(emb.vectors, [[1, 2], [3, 4], [7, 8]])
    assert [s.line for s in emb.skipped] == [3, 4, 6, 7, 8]
    assert all(isinstance(s, SkippedRow) for s in emb.skipped)
    reasons = [s.reason for s in emb.skipped]
    assert reasons[0] == "features has 1 values, expected 2 (the most common dimension)"
    assert reasons[1].startswith("features is not a JSON array of numbers")
    assert reasons[2:] == ["duplicate id 1", "vector holds NaN or infinity", "id -1 is reserved"]


def test_skip_mode_takes_the_most_common_dimension(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0]"', '2,"[1.0, 2.0]"', '3,"[3.0, 4.0]"'])
    emb = read_embeddings(path, on_bad_row="skip")
    assert emb.dim == 2 and list(emb.ids) == [2, 3]
    assert emb.skipped == (
        SkippedRow(2, "features has 1 values, expected 2 (the most common dimension)"),
    )


def test_skip_mode_with_nothing_left(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[a]"', '2,"[b]"'])
    with pytest.raises(
        InputFormatError, match=r"no embeddings: all 2 rows are malformed \(first: line 2"
    ):
        read_embeddings(path, on_bad_row="skip")


def test_many_blocks_fast_and_general_paths_agree(tmp_path, monkeypatch, make_data, write_csv):
    """Small blocks: the row numbering and the ids survive block boundaries on both paths."""
    monkeypatch.setattr(_fast_csv, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(spark_csv, "_BLOCK_BYTES", 256)
    ids, vectors = make_data(300, 7)
    path = write_csv(tmp_path / "e.csv", ids, vectors)
    fast = read_embeddings(path)
    general = read_embeddings(write_csv(tmp_path / "q.csv", ids, vectors, sep=" ,"))  # not plain
    for emb in (fast, general):
        np.testing.assert_array_equal(emb.ids, ids)
        np.testing.assert_array_equal(emb.vectors, vectors)


@pytest.mark.parametrize("spaced", [False, True], ids=["plain-layout", "general-reader"])
def test_bad_row_deep_in_the_file_names_its_line(
    tmp_path, monkeypatch, make_data, write_csv, spaced
):
    monkeypatch.setattr(_fast_csv, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(spark_csv, "_BLOCK_BYTES", 256)
    ids, vectors = make_data(200, 3)
    path = write_csv(tmp_path / "e.csv", ids, vectors, sep=" , " if spaced else ", ")
    lines = path.read_text().splitlines()
    lines[150] = f'{ids[149]},"[1.0, oops, 2.0]"'  # line 151
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match=r"line 151: features is not a JSON array"):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert len(emb) == 199 and emb.skipped[0].line == 151


def test_plain_layout_is_taken_for_pandas_files(tmp_path, make_data, write_csv):
    ids, vectors = make_data(3, 2)
    path = write_csv(tmp_path / "e.csv", ids, vectors, index=True)
    blocks = _fast_csv.read_plain_layout(path, ["", "id", "features"], "id", "features")
    assert blocks is not None and sum(len(b) for b in blocks) == 3


def test_only_rows_with_wrong_field_counts(tmp_path, write_text):
    path = write_text(tmp_path / "e.csv", [HEADER, '1,"[1.0]",x'])
    with pytest.raises(InputFormatError, match=r"line 2: expected 2 fields, found 3"):
        read_embeddings(path)
    with pytest.raises(InputFormatError, match=r"no embeddings: all 1 rows are malformed"):
        read_embeddings(path, on_bad_row="skip")


def test_columns_in_another_order_with_extras(tmp_path, write_text):
    path = write_text(
        tmp_path / "e.csv", ["features,score,id", '"[1.0, 2.0]",0.5,7', '"[3.0, 4.0]",0.1,8']
    )
    emb = read_embeddings(path)
    assert emb.ids.tolist() == [7, 8]
    np.testing.assert_array_equal(emb.vectors, [[1, 2], [3, 4]])
