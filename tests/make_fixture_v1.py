"""Writes tests/fixtures/artifact-v1 (kept in the repository): run once per new format version.

The fixture is synthetic (no MovieLens data) and tiny, so that CI can keep loading what an
earlier embrecall wrote.
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


def main() -> None:
    rng = np.random.default_rng(2024)
    items = Embeddings(np.arange(10, 50), rng.standard_normal((40, 4)).astype(np.float32))
    users = Embeddings(np.arange(1, 9), rng.standard_normal((8, 4)).astype(np.float32))
    catalog = Catalog(
        pd.DataFrame(
            {
                "title": [f"Film {i} (été {i})" for i in range(10, 50)],
                "genres": ["Drama|Comedy"] * 40,
            },
            index=pd.Index(np.arange(10, 50), name="movieId"),
        )
    )
    ratings = HERE / "ratings.tmp.csv"
    pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 11, 12]}).to_csv(ratings, index=False)
    rec = Recommender.build(items, users, catalog=catalog, interactions=read_interactions(ratings))
    ratings.unlink()
    target = HERE / "artifact-v1"
    shutil.rmtree(target, ignore_errors=True)
    rec.save(target)
    expected = []
    for method, id_ in (("recommend", 1), ("similar_items", 10), ("similar_users", 2)):
        ids, scores = getattr(rec, method)(id_, k=5)
        expected.append(
            {"method": method, "id": id_, "k": 5, "ids": ids.tolist(), "scores": scores.tolist()}
        )
    expected[0]["first_title"] = rec.results(*rec.recommend(1, k=1))[0]["title"]
    (HERE / "artifact-v1-expected.json").write_text(
        json.dumps(expected, indent=1, ensure_ascii=False) + "\n"
    )
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
