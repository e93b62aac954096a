"""CSV framing defects (quotes that do not close, stray quotes): a row named by its line, never
rows silently merged or lost.

Each file below is otherwise in the plain pandas layout, so both the fast path and the general
reader it falls back to are exercised.
"""

from __future__ import annotations

import gzip

import pytest

from embrecall.errors import InputFormatError
from embrecall.io import read_embeddings

GOOD = ['10,"[0.1, 0.2, 0.3]"', '20,"[0.4, 0.5, 0.6]"']
AFTER = ['30,"[0.7, 0.8, 0.9]"', '40,"[1.0, 1.1, 1.2]"']

# the defective line is always line 4 (header = line 1)
MID_FILE = {
    "unterminated quote": '58,"[0.1, 0.2, 0.3',
    "unterminated quote after the bracket": '58,"[0.1, 0.2, 0.3]',
    "stray quote in the id": '5"8,"[0.1, 0.2, 0.3]"',
    "stray quote in the vector": '58,"[0.1, 0.2", 0.3]"',
    "quote opening the id only": '"58,"[0.1, 0.2, 0.3]"',
}


def _write(path, lines, *, end="\n", final_newline=True, compress=False):
    text = end.join(["id,features", *lines]) + (end if final_newline else "")
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(text.encode())
    else:
        path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize("line", MID_FILE.values(), ids=MID_FILE.keys())
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_framing_defect_mid_file_is_refused_with_its_line(tmp_path, line, compress):
    name = "e.csv.gz" if compress else "e.csv"
    path = _write(tmp_path / name, [*GOOD, line, *AFTER], compress=compress)
    with pytest.raises(InputFormatError, match=r"e\.csv(\.gz)?: line 4: odd number of quote") as e:
        read_embeddings(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("line", MID_FILE.values(), ids=MID_FILE.keys())
def test_skip_drops_only_the_defective_line(tmp_path, line):
    path = _write(tmp_path / "e.csv", [*GOOD, line, *AFTER])
    emb = read_embeddings(path, on_bad_row="skip")
    assert emb.ids.tolist() == [10, 20, 30, 40]  # the lines after the defect are all there
    assert [s.line for s in emb.skipped] == [4]
    assert "quote" in emb.skipped[0].reason


@pytest.mark.parametrize("final_newline", [True, False])
@pytest.mark.parametrize("end", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_quote_never_closed_at_the_end_of_the_file(tmp_path, final_newline, end):
    path = _write(
        tmp_path / "e.csv", [*GOOD, '58,"[0.1, 0.2, 0.3'], end=end, final_newline=final_newline
    )
    with pytest.raises(InputFormatError, match=r"line 4: odd number of quote"):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert emb.ids.tolist() == [10, 20] and [s.line for s in emb.skipped] == [4]


def test_lines_after_a_defect_keep_their_numbers(tmp_path):
    path = _write(tmp_path / "e.csv", [*GOOD, '58,"[0.1, 0.2', *AFTER, '50,"[1.0, 2.0]"'])
    emb = read_embeddings(path, on_bad_row="skip")
    # the wrong dimension is reported on its own line (7), after the cut-out line 4
    assert [s.line for s in emb.skipped] == [4, 7]
    assert emb.ids.tolist() == [10, 20, 30, 40]


def test_with_a_pandas_index_column_and_a_wrong_field_count_too(tmp_path):
    lines = [
        ",id,features",
        '0,10,"[0.1, 0.2]"',
        '1,11,"[0.1, 0.2]",extra',
        '2,58,"[0.1, 0.2',
        '3,20,"[0.3, 0.4]"',
    ]
    path = tmp_path / "e.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match=r"line 3: expected 3 fields, found 4"):
        read_embeddings(path)
    emb = read_embeddings(path, on_bad_row="skip")
    assert emb.ids.tolist() == [10, 20] and [s.line for s in emb.skipped] == [3, 4]


def test_quoted_ids_with_escaped_quotes_still_read(tmp_path, make_data, write_csv):
    _, vectors = make_data(2, 3)
    ids = ['say "hi"', "Heat, 1995"]
    assert read_embeddings(write_csv(tmp_path / "e.csv", ids, vectors)).ids.tolist() == ids


def test_an_unbalanced_header_is_refused(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text('id,"features\n10,"[0.1]"\n')
    with pytest.raises(InputFormatError, match=r"line 1"):
        read_embeddings(path, format="spark_csv")
