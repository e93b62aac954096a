"""Writes tests/fixtures/artifact-v2 (kept in the repository): run once per new format version.

Format 2 is the one that records the inner-product norm augmentation, so the fixture holds an IVF
index over inner products (augmented), with string ids, a small catalogue and seen items. It is
synthetic and tiny, so that CI can keep loading what an earlier embrecall wrote.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from embrecall.catalog import Catalog
from embrecall.embeddings import Embeddings
from embrecall.interactions import read_interactions
from embrecall.recommender import Recommender

HERE = Path(__file__).parent / "fixtures"
QUERIES = (
    ("recommend", "user-01"),
    ("recommend", "user-05"),
    ("similar_items", "item-007"),
    ("similar_users", "user-02"),
)


def main() -> None:
    rng = np.random.default_rng(2026)
    item_ids = np.array([f"item-{i:03d}" for i in range(160)])
    user_ids = np.array([f"user-{u:02d}" for u in range(12)])
    centres = rng.standard_normal((4, 8)).astype(np.float32)
    topic = np.arange(160) % 4
    item_vectors = centres[topic] + 0.3 * rng.standard_normal((160, 8)).astype(np.float32)
    item_vectors *= rng.lognormal(0, 0.4, (160, 1)).astype(np.float32)  # skewed norms
    user_vectors = centres[np.arange(12) % 4] + 0.3 * rng.standard_normal((12, 8))
    items = Embeddings(item_ids, item_vectors.astype(np.float32), source="items")
    users = Embeddings(user_ids, user_vectors.astype(np.float32), source="users")
    catalog = Catalog(
        pd.DataFrame(
            {
                "title": [f"Film {i} (sommer {1990 + i % 30})" for i in range(160)],
                "genres": [["Drama", "Comedy", "Horror", "Western"][t] for t in topic],
            },
            index=pd.Index(item_ids, name="itemId"),
        )
    )
    ratings = HERE / "ratings.tmp.csv"
    seen = {"user-01": [117, 81, 5], "user-05": [1, 45], "user-02": [2]}  # some of their best
    pd.DataFrame(
        [(u, item_ids[i]) for u, rows in seen.items() for i in rows],
        columns=["userId", "itemId"],
    ).to_csv(ratings, index=False)
    rec = Recommender.build(
        items,
        users,
        catalog=catalog,
        interactions=read_interactions(ratings),
        index={"recommend": "IVF4,Flat", "similar_items": "IVF4,Flat"},
    )
    ratings.unlink()
    target = HERE / "artifact-v2"
    shutil.rmtree(target, ignore_errors=True)
    rec.save(target)
    expected = []
    for method, id_ in QUERIES:
        ids, scores = getattr(rec, method)(id_, k=5)
        expected.append(
            {"method": method, "id": id_, "k": 5, "ids": ids.tolist(), "scores": scores.tolist()}
        )
    expected[0]["first_title"] = rec.results(*rec.recommend(QUERIES[0][1], k=1))[0]["title"]
    (HERE / "artifact-v2-expected.json").write_text(
        json.dumps(expected, indent=1, ensure_ascii=False) + "\n"
    )
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
