"""Batch recall on one machine into SQLite and parquet: the same answers as online, resumable."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import embrecall
from embrecall.batch import CachedRecall, SinkError, cached, open_sink, plan_batch, run_batch
from embrecall.batch.commands import add_commands
from embrecall.batch.sinks.base import Sink
from embrecall.cli import main as cli_main
from embrecall.errors import InvalidArgumentError, UnknownIdError
from helpers import assert_same_list

from .support import save_small

QUERIES = ["recommend", "similar_items", "similar_users"]


@pytest.fixture(params=["sqlite", "parquet"])
def sink_address(request, tmp_path) -> str:
    return str(tmp_path / "out.sqlite") if request.param == "sqlite" else str(tmp_path / "out")


def test_every_list_equals_online_and_exclusions_hold(rec, sink_address):
    plan = plan_batch(rec, k=15, queries=QUERIES, block_size=16)
    report = run_batch(plan, sink_address, progress=False)
    assert report.queries == {"recommend": 60, "similar_items": 500, "similar_users": 60}
    assert report.blocks_computed == plan.n_blocks and report.blocks_resumed == 0
    recall = CachedRecall(sink_address)
    for user in rec.users.ids:
        got = recall.recommend(user)
        assert_same_list(got, rec.recommend(user, 15))
        assert not np.isin(got[0], rec.seen_items(user)).any()  # seen items stay out
        assert_same_list(recall.similar_users(user), rec.similar_users(user, 15))
        assert user not in recall.similar_users(user)[0]
    for item in rec.items.ids:
        got = recall.similar_items(item)
        assert_same_list(got, rec.similar_items(item, 15))
        assert item not in got[0]
    assert recall.version == report.version


def test_results_carry_catalog_fields_like_online(rec, sink_address):
    run_batch(plan_batch(rec, k=5), sink_address, progress=False)
    recall = CachedRecall(sink_address)
    user = rec.users.ids[3]
    ids, scores = recall.recommend(user, k=3)
    offline, online = recall.results(ids, scores), rec.results(*rec.recommend(user, 3))
    assert [r.pop("score") for r in offline] == pytest.approx([r.pop("score") for r in online])
    assert offline == online  # ids, titles, genres
    with pytest.raises(InvalidArgumentError, match="stored 5 results per id; 6 were asked"):
        recall.recommend(user, k=6)
    with pytest.raises(InvalidArgumentError, match="computed recommend, not similar_items"):
        recall.similar_items(rec.items.ids[0])


def test_string_ids(tmp_path):
    rec = embrecall.load(save_small(tmp_path, string_ids=True))
    out = str(tmp_path / "s.sqlite")
    run_batch(plan_batch(rec, k=8, queries=QUERIES, block_size=7), out, progress=False)
    for user in rec.users.ids[:10]:
        assert_same_list(cached(user, out), rec.recommend(user, 8))
        assert_same_list(cached(user, out, query="similar_users"), rec.similar_users(user, 8))
    pq_out = tmp_path / "pq"
    run_batch(plan_batch(rec, k=8, block_size=7), str(pq_out), progress=False)
    assert_same_list(cached(rec.users.ids[0], str(pq_out)), rec.recommend(rec.users.ids[0], 8))


def test_parquet_layout_is_loadable_elsewhere(rec, tmp_path):
    out = tmp_path / "out"
    report = run_batch(plan_batch(rec, k=4, block_size=25), str(out), progress=False)
    assert (out / "CURRENT").read_text().strip() == report.version
    table = pq.read_table(out / report.version / "u2i")
    assert table.column_names == ["id", "ids", "scores"] and table.num_rows == 60
    row = table.slice(0, 1).to_pylist()[0]
    want_ids, want_scores = rec.recommend(row["id"], 4)
    assert row["ids"] == want_ids.tolist()
    np.testing.assert_allclose(row["scores"], want_scores, rtol=1e-6)
    meta = json.loads((out / report.version / "_meta.json").read_text())
    assert meta["status"] == "complete" and meta["queries"]["recommend"]["metric"] == "ip"


def test_include_seen_and_a_given_user_list(rec, sink_address):
    users = list(rec.users.ids[[5, 1, 5, 9]])  # a repeat is computed once
    plan = plan_batch(rec, k=6, user_ids=users, exclude_seen=False)
    report = run_batch(plan, sink_address, progress=False)
    assert report.queries == {"recommend": 3}
    for user in set(users):
        assert_same_list(cached(user, sink_address), rec.recommend(user, 6, exclude_seen=False))
    left_out = rec.users.ids[2]  # not in the list
    with pytest.raises(UnknownIdError, match=f"no cached recommend results for user id {left_out}"):
        cached(left_out, sink_address)


def test_unknown_user_ids_are_refused_or_skipped_and_reported(rec, tmp_path):
    users = [rec.users.ids[0], 424242, "not-a-number", rec.users.ids[1]]
    with pytest.raises(Exception, match="not an integer"):
        plan_batch(rec, k=3, user_ids=users)
    users = [rec.users.ids[0], 424242, 434343, rec.users.ids[1]]
    with pytest.raises(UnknownIdError, match="unknown user id 424242, 434343") as err:
        plan_batch(rec, k=3, user_ids=users)
    assert err.value.ids == [424242, 434343]
    plan = plan_batch(rec, k=3, user_ids=users, on_unknown="skip")
    assert plan.unknown_ids == [424242, 434343] and plan.n_queries == 2
    report = run_batch(plan, str(tmp_path / "o.db"), progress=False)
    assert report.unknown_ids == [424242, 434343]
    with pytest.raises(InvalidArgumentError, match="none of the given user ids"):
        plan_batch(rec, k=3, user_ids=[424242], on_unknown="skip")
    # An id beyond int64 is one more unknown id, skipped on request like the others.
    huge = 99999999999999999999999
    plan = plan_batch(rec, k=3, user_ids=[rec.users.ids[0], huge], on_unknown="skip")
    assert plan.unknown_ids == [huge] and plan.n_queries == 1
    with pytest.raises(UnknownIdError, match=str(huge)):
        plan_batch(rec, k=3, user_ids=[huge])


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_k_must_be_positive(rec, k):
    with pytest.raises(InvalidArgumentError, match="k must be a positive integer"):
        plan_batch(rec, k=k)


def test_bad_plans_are_refused_before_any_work(rec):
    with pytest.raises(InvalidArgumentError, match="unknown query kind 'u2i'"):
        plan_batch(rec, queries=["u2i"])
    with pytest.raises(InvalidArgumentError, match="search must be"):
        plan_batch(rec, search="ann")
    with pytest.raises(InvalidArgumentError, match="block size"):
        plan_batch(rec, block_size=0)


def test_index_search_uses_the_artifacts_ann_index_with_exclusions(tmp_path):
    from helpers import build_small

    rec = build_small(tmp_path, index="IVF8,Flat")
    out = str(tmp_path / "ann.db")
    plan = plan_batch(rec, k=20, queries=QUERIES, search="index", params={"nprobe": 2})
    run_batch(plan, out, progress=False)
    recall = CachedRecall(out)
    for user in rec.users.ids:
        ids, scores = recall.recommend(user)
        assert len(ids) == 20 and not np.isin(ids, rec.seen_items(user)).any()
        # IVF filtered inside faiss and IVF over-fetched then filtered visit the same lists.
        assert_same_list((ids, scores), rec.recommend(user, 20, params={"nprobe": 2}))
    for item in rec.items.ids[:100]:
        ids, _ = recall.similar_items(item)
        assert len(ids) == 20 and item not in ids


class FailingSink(Sink):
    """A real sink whose process 'dies' after ``fail_after`` blocks: an injected fault."""

    def __init__(self, inner: Sink, fail_after: int) -> None:
        self.inner, self.fail_after, self.url = inner, fail_after, inner.url

    def check(self) -> None:
        self.inner.check()

    def open_run(self, fingerprint, meta, *, restart):
        run = self.inner.open_run(fingerprint, meta, restart=restart)
        original, count = run.write_block, [0]

        def write_block(*args):
            if count[0] >= self.fail_after:
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run
            count[0] += 1
            original(*args)

        run.write_block = write_block
        return run

    def reader(self):
        return self.inner.reader()


def test_an_interrupted_run_keeps_the_previous_version_and_resumes(rec, sink_address):
    first = run_batch(plan_batch(rec, k=5), sink_address, progress=False)
    plan = plan_batch(rec, k=9, queries=QUERIES, block_size=10)  # 6 + 50 + 6 blocks
    with pytest.raises(KeyboardInterrupt):
        run_batch(plan, FailingSink(open_sink(sink_address), fail_after=20), progress=False)
    recall = CachedRecall(sink_address)
    user = rec.users.ids[0]
    assert len(recall.recommend(user)[0]) == 5  # still the first run, whole
    assert recall.version == first.version
    resumed = run_batch(plan, sink_address, progress=False)
    assert resumed.blocks_resumed >= 18 and resumed.blocks_computed <= plan.n_blocks - 18
    assert resumed.blocks_resumed + resumed.blocks_computed == plan.n_blocks
    for u in rec.users.ids:
        assert_same_list(recall.recommend(u), rec.recommend(u, 9))
    for item in rec.items.ids[::7]:
        assert_same_list(recall.similar_items(item), rec.similar_items(item, 9))
    # Done work is not done twice, and restart=True starts afresh under a new version.
    again = run_batch(plan, sink_address, restart=True, progress=False)
    assert again.blocks_resumed == 0 and again.version != resumed.version


def test_cli_batch_then_cached_answers_like_recommend(artifact, tmp_path, capsys, batch_cli):
    run = batch_cli
    out = str(tmp_path / "cli.sqlite")
    user_file = tmp_path / "users.txt"
    user_file.write_text("# users to refresh\n1000\n1001\n\n99999\n")
    text = run(
        "batch",
        str(artifact),
        "--out",
        out,
        "-k",
        "12",
        "--users",
        str(user_file),
        "--unknown-users",
        "skip",
        "--query",
        "recommend",
        "--query",
        "similar-items",
    )
    err = capsys.readouterr().err
    assert "wrote version" in text
    report = json.loads(
        run("batch", str(artifact), "--out", out, "-k", "12", "--json", "-q", "--restart")
    )
    assert report["queries"] == {"recommend": 60} and report["unknown_ids"] == []
    assert cli_main(["recommend", str(artifact), "1000", "--json", "-k", "7"]) == 0
    online = json.loads(capsys.readouterr().out)
    offline = json.loads(run("cached", "1000", "--from", out, "--json", "-k", "7"))
    assert offline.keys() == online.keys()
    assert [r["id"] for r in offline["results"]] == [r["id"] for r in online["results"]]
    for a, b in zip(offline["results"], online["results"]):
        assert a.pop("score") == pytest.approx(b.pop("score"), rel=1e-5) and a == b
    assert {k: v for k, v in offline.items() if k != "results"} == {
        k: v for k, v in online.items() if k != "results"
    }
    table = run("cached", "1000", "--from", out, "-k", "2")
    assert "title" in table and len(table.strip().splitlines()) == 4
    del err


def test_cli_plan_prints_the_estimate_and_unknown_ids(artifact, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="embrecall")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "batch",
            str(artifact),
            "--out",
            str(tmp_path / "x"),
            "--user",
            "1000",
            "--user",
            "77",
            "--unknown-users",
            "skip",
            "-k",
            "3",
        ]
    )
    assert args.run(args) == 0
    err = capsys.readouterr().err
    assert "left out 1 unknown user ids: 77" in err
    assert "computing recommend for 1 users: k=3, exact search on" in err
    assert "about" in err and "result lists" in err


def test_reading_a_sink_without_a_finished_run_says_so(tmp_path):
    with pytest.raises(SinkError, match="no batch run has completed there yet"):
        cached(1, str(tmp_path / "empty"))
    with pytest.raises(SinkError, match="no such SQLite database"):
        cached(1, str(tmp_path / "missing.sqlite"))
