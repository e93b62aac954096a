"""`embrecall demo`: read embeddings, build an artifact, and show recommendations with titles.

On the built-in synthetic data it also checks the planted tastes (a sci-fi fan gets sci-fi);
pointed at a MovieLens folder and Spark ALS embeddings it runs the same flow on those.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embrecall.display import results_table
from embrecall.errors import InputFormatError
from embrecall.pipeline import build
from embrecall.recommender import Recommender


@dataclass(frozen=True)
class DemoInputs:
    items: Path
    users: Path
    catalog: Path | None
    interactions: Path | None
    favourite_genre: dict[int, str] | None = None  # planted truth, synthetic data only


def run_demo(
    *,
    out_dir: str | Path | None = None,
    movielens: str | Path | None = None,
    embeddings: str | Path | None = None,
    user_ids: list | None = None,
    k: int = 10,
    emit: Callable[[str], None] = print,
) -> Recommender:
    """Run the whole flow and ``emit`` readable output; returns the loaded recommender.

    Without ``out_dir`` the data and artifact go to a temporary folder that is removed at the
    end, also on an error or Ctrl-C; the returned recommender is held in memory.
    """
    if (movielens is None) != (embeddings is None):
        raise InputFormatError(
            "give both --movielens and --embeddings, or neither for the built-in data"
        )
    if out_dir:
        return _run(Path(out_dir), movielens, embeddings, user_ids, k, emit, keep=True)
    work = Path(tempfile.mkdtemp(prefix="embrecall-demo-"))
    try:
        return _run(work, movielens, embeddings, user_ids, k, emit, keep=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, movielens, embeddings, user_ids, k: int, emit, *, keep: bool) -> Recommender:
    if movielens:
        inputs = _real_inputs(Path(movielens), Path(embeddings))
        emit(f"Data: {inputs.items}, {inputs.users}, {inputs.catalog}, {inputs.interactions}")
    else:
        inputs = _synthetic_inputs(work / "data", emit)

    artifact = work / "artifact"
    emit(f"\nBuilding an artifact from {inputs.items.name} and {inputs.users.name} ...")
    rec = build(
        inputs.items,
        inputs.users,
        catalog=inputs.catalog,
        interactions=inputs.interactions,
        out=artifact,
        overwrite=True,
    )
    info = rec.describe()
    where = f"written to {artifact}" if keep else "in a temporary folder (--out-dir keeps it)"
    emit(
        f"  {info['spaces']['items']['count']} items and {info['spaces']['users']['count']} users, "
        f"dimension {info['spaces']['items']['dim']}; {where}"
    )
    from embrecall import load

    rec = load(artifact)  # answer from the artifact on disk, as a server would
    users = user_ids or _showcase_users(rec, inputs.favourite_genre)
    for user in users:
        _show_user(rec, user, k, inputs.favourite_genre, emit)
    first_item = rec.recommend(users[0], k=1)[0][0]
    _show_similar_items(rec, first_item, k, emit)
    _show_similar_users(rec, users[0], k, inputs.favourite_genre, emit)
    shown = artifact if keep else "DIR/artifact"
    emit(
        ("" if keep else "\n(this run's artifact was temporary: `--out-dir DIR` keeps it)")
        + f"\nNext: embrecall recommend {shown} {users[0]} -k 30   |   "
        f"embrecall similar-items {shown} {first_item}   |   "
        f"embrecall inspect {shown}"
    )
    return rec


def _synthetic_inputs(root: Path, emit) -> DemoInputs:
    from embrecall.demo.data import write_demo_data

    data = write_demo_data(root)
    emit(
        f"Built-in data: a synthetic MovieLens-shaped catalogue with planted tastes, in {root}\n"
        f"  {data.items.name}, {data.users.name} (Spark ALS CSV format), "
        f"{data.catalog.name}, {data.interactions.name}"
    )
    return DemoInputs(data.items, data.users, data.catalog, data.interactions, data.favourite_genre)


def _real_inputs(movielens: Path, embeddings: Path) -> DemoInputs:
    def first(folder: Path, patterns: list[str], what: str) -> Path:
        for pattern in patterns:
            found = sorted(folder.glob(pattern))
            if found:
                return found[0]
        raise InputFormatError(f"{folder}: no {what} file ({' or '.join(patterns)})")

    return DemoInputs(
        items=first(embeddings, ["*item*.csv", "*item*.parquet", "*item*"], "item embeddings"),
        users=first(embeddings, ["*user*.csv", "*user*.parquet", "*user*"], "user embeddings"),
        catalog=first(movielens, ["movies.csv", "movies.dat"], "movies"),
        interactions=first(movielens, ["ratings.csv", "ratings.dat"], "ratings"),
    )


def _showcase_users(rec: Recommender, favourites: dict[int, str] | None) -> list:
    """A sci-fi fan and a romance fan on the built-in data; the lowest user id otherwise."""
    if not favourites:
        return [min(rec.users.ids)]
    picks = [
        next(u for u, g in favourites.items() if g == genre) for genre in ("Sci-Fi", "Romance")
    ]
    return picks


def _show_user(rec: Recommender, user, k: int, favourites, emit) -> None:
    seen = rec.seen_items(user)
    emit(
        f"\n== User {user}: has rated {len(seen)} movies" + _taste_line(rec, seen, favourites, user)
    )
    ids, scores = rec.recommend(user, k=k)
    emit(f"Top {k} recommendations (inner product, seen movies excluded):")
    emit(results_table(rec.results(ids, scores)))
    if favourites:
        share = _genre_share(rec, ids, favourites[int(user)])
        emit(
            f"{share:.0%} of these are {favourites[int(user)]}, "
            "the genre this user was planted to like."
        )


def _show_similar_items(rec: Recommender, item, k: int, emit) -> None:
    title = rec.results([item], [0.0])[0].get("title", item)
    emit(f"\n== Movies most like {title} (cosine):")
    ids, scores = rec.similar_items(item, k=k)
    emit(results_table(rec.results(ids, scores)))


def _show_similar_users(rec: Recommender, user, k: int, favourites, emit) -> None:
    emit(f"\n== Users most like user {user} (cosine):")
    results = rec.similar_users(user, k=k).records
    if favourites:
        for r in results:
            r["planted favourite"] = favourites[int(r["id"])]
    emit(results_table(results))


def _taste_line(rec: Recommender, seen, favourites, user) -> str:
    if rec.catalog is None or len(seen) == 0:
        return ""
    counts = Counter(
        g for r in rec.catalog.records(list(seen)) for g in str(r.get("genres", "")).split("|") if g
    )
    top = ", ".join(f"{g} ({n})" for g, n in counts.most_common(3))
    planted = f"; planted favourite: {favourites[int(user)]}" if favourites else ""
    return f"; most-rated genres: {top}{planted}"


def _genre_share(rec: Recommender, ids, genre: str) -> float:
    records = rec.catalog.records(list(ids))
    return sum(genre in str(r.get("genres", "")).split("|") for r in records) / max(1, len(records))
