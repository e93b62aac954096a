"""The result noun: it unpacks as (ids, scores), says what it answers, and joins records lazily."""

from __future__ import annotations

import json

import numpy as np
import pytest

import embrecall
from embrecall.cli import main
from embrecall.neighbors import Neighbors
from helpers import build_small


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("neighbors")
    return build_small(tmp), tmp


def test_exported_from_the_package():
    assert embrecall.Neighbors is Neighbors


def test_single_query_unpacks_as_1d_ids_and_scores(world):
    rec, _ = world
    answer = rec.recommend(rec.users.ids[0], k=5)
    assert isinstance(answer, Neighbors)
    ids, scores = answer
    assert ids is answer.ids and scores is answer.scores
    assert ids.shape == scores.shape == (5,) and not answer.is_batch
    assert answer[0] is ids and answer[1] is scores and len(answer) == 2
    assert rec.results(*answer) == answer.records


def test_batch_unpacks_as_2d_and_rows_drop_the_padding(world):
    rec, _ = world
    answer = rec.similar_items(rec.items.ids[:3], k=4)
    ids, scores = answer
    assert ids.shape == scores.shape == (3, 4) and answer.is_batch
    rows = answer.rows()
    assert [r.ids.tolist() for r in rows] == ids.tolist()
    assert all(r.query == "similar_items" and r.space == "items" for r in rows)
    assert answer.to_records() == [r.to_records() for r in rows]
    padded = Neighbors(
        np.array([[1, -1]]),
        np.array([[0.5, np.nan]], dtype=np.float32),
        query="recommend",
        space="items",
        metric="ip",
        higher_is_better=True,
    )
    assert padded.to_records() == [[{"id": 1, "score": 0.5}]]


@pytest.mark.parametrize(
    ("method", "query_space", "space", "metric"),
    [
        ("recommend", "users", "items", "ip"),
        ("similar_items", "items", "items", "cosine"),
        ("similar_users", "users", "users", "cosine"),
    ],
)
def test_says_its_query_kind_space_metric_and_direction(world, method, query_space, space, metric):
    rec, _ = world
    qid = rec.space(query_space).ids[0]
    answer = getattr(rec, method)(qid, k=3)
    assert (answer.query, answer.space, answer.metric) == (method, space, metric)
    assert answer.higher_is_better and answer.score == "higher is better"
    by_vector = getattr(rec, f"{method}_by_vector")(rec.space(query_space).vectors[0], k=3)
    assert (by_vector.query, by_vector.space, by_vector.metric) == (method, space, metric)


def test_l2_says_lower_is_better(tmp_path):
    rec = build_small(tmp_path, metrics={"similar_items": "l2"})
    answer = rec.similar_items(rec.items.ids[0], k=3)
    assert not answer.higher_is_better
    assert answer.score == rec.describe()["queries"]["similar_items"]["score"]


def test_records_join_the_catalog_for_items_only(world):
    rec, _ = world
    items = rec.recommend(rec.users.ids[0], k=3).records
    assert [r["id"] for r in items] == rec.recommend(rec.users.ids[0], k=3).ids.tolist()
    assert all(isinstance(r["id"], int) and isinstance(r["score"], float) for r in items)
    assert items[0]["title"].startswith("Movie ")
    users = rec.similar_users(rec.users.ids[0], k=2).records
    assert set(users[0]) == {"id", "score"}


def test_to_dict_is_the_cli_json(world, capsys):
    rec, tmp = world
    path = tmp / "artifact"
    rec.save(str(path), overwrite=True)
    loaded = embrecall.load(path)
    user = int(loaded.users.ids[0])
    assert main(["recommend", str(path), str(user), "-k", "7", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(loaded.recommend(user, k=7).to_dict(id=user, k=7)))


def test_the_hot_path_allocates_no_instance_dict(world):
    rec, _ = world
    answer = rec.recommend(rec.users.ids[0], k=3)
    assert not hasattr(answer, "__dict__")
