"""Pick ALS settings on a validation split carved from the *training* part only.

    python benchmarks/tune_als.py ../shared/data/movielens/ml-latest-small/ratings.csv

The ratings are split by time per user exactly as `embrecall train` does (last 20% of each user
held out as the test part, never looked at here); the training part is split again the same way
into fit and validation, and a small grid of (factors, regularization, alpha) is scored by
NDCG@10 on validation. The printed best row is what `embrecall train`'s defaults were set from;
the test part stays untouched for the figures in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from embrecall.evaluate.quality import evaluate_quality
from embrecall.evaluate.split import time_split
from embrecall.evaluate.train import train_als
from embrecall.interactions import read_interactions
from embrecall.recommender import Recommender

GRID = {
    "factors": (16, 32, 64, 128),
    "regularization": (0.05, 0.5, 2.0, 8.0),
    "alpha": (0.5, 1.0, 4.0, 10.0, 40.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ratings", help="ratings file (e.g. ml-latest-small/ratings.csv)")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args()
    path = Path(args.ratings)
    if not path.exists():
        print(f"{path} not found (MovieLens lives in ../shared/data/movielens/)", file=sys.stderr)
        return 1
    train = time_split(read_interactions(path), holdout=args.holdout).train
    inner = time_split(train, holdout=args.holdout)  # fit / validation, inside training only
    print("factors  reg    alpha  val HR@10  val NDCG@10  seconds")
    best = None
    for factors, reg, alpha in itertools.product(*GRID.values()):
        t = time.perf_counter()
        users, items = train_als(
            inner.train,
            factors=factors,
            iterations=args.iterations,
            regularization=reg,
            alpha=alpha,
            progress=False,
        )
        rec = Recommender.build(items, users, interactions=inner.train)
        report = evaluate_quality(rec, inner.test, ks=(10,), progress=False)
        hr, ndcg = report.value("model", 10, "hit_rate"), report.value("model", 10, "ndcg")
        print(
            f"{factors:7d}  {reg:<5}  {alpha:<5}  {hr:9.4f}  {ndcg:11.4f}  "
            f"{time.perf_counter() - t:7.1f}"
        )
        if best is None or ndcg > best[0]:
            best = (ndcg, factors, reg, alpha)
    print(
        f"best on validation: factors={best[1]} regularization={best[2]} alpha={best[3]} "
        f"(NDCG@10 {best[0]:.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
