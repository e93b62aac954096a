"""A small synthetic MovieLens with planted tastes, so that a sci-fi fan really gets sci-fi.

Each genre is a direction in embedding space. A movie's vector points along its genres, scaled
by a popularity factor (trained MF vectors have skewed norms too); a user's vector points along
their favourite genres; each user has rated movies drawn mostly from those genres. Everything is
written in the formats real users have: Spark ALS CSVs (``id,features`` with a JSON array per
row), ``movies.csv`` with quoted titles, ``ratings.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from embrecall.embeddings import Embeddings
from embrecall.io.spark_csv import write_spark_csv

GENRES = (
    "Sci-Fi",
    "Romance",
    "Horror",
    "Comedy",
    "Animation",
    "Western",
    "Documentary",
    "Thriller",
)
_WORDS = {
    "Sci-Fi": (
        ["Quantum", "Galactic", "Android", "Orbital", "Cyber", "Stellar"],
        ["Frontier", "Protocol", "Colony", "Nebula", "Signal", "Drift"],
    ),
    "Romance": (
        ["Paris", "Summer", "Secret", "Sweet", "Moonlit", "Lost"],
        ["Letters", "Kiss", "Promise", "Wedding", "Heart", "Serenade"],
    ),
    "Horror": (
        ["Cursed", "Silent", "Hollow", "Bleeding", "Haunted", "Crimson"],
        ["Attic", "Cellar", "Ritual", "Harvest", "Manor", "Whisper"],
    ),
    "Comedy": (
        ["Crazy", "Awkward", "Big", "Lucky", "Wild", "Accidental"],
        ["Weekend", "Roommates", "Road Trip", "Reunion", "Business", "Vacation"],
    ),
    "Animation": (
        ["Little", "Brave", "Magic", "Tiny", "Flying", "Wandering"],
        ["Dragon", "Robot", "Penguin", "Kingdom", "Balloon", "Forest"],
    ),
    "Western": (
        ["Dusty", "Lonesome", "Iron", "Red", "Last", "Broken"],
        ["Saddle", "Canyon", "Outlaw", "Frontier Town", "Sheriff", "Trail"],
    ),
    "Documentary": (
        ["Inside", "Beyond", "Behind", "Deep", "Hidden", "Wild"],
        ["Ocean", "Kitchen", "Machine", "Mountain", "Election", "Orchestra"],
    ),
    "Thriller": (
        ["Deadly", "Final", "Midnight", "Silent", "Double", "Cold"],
        ["Witness", "Contract", "Alibi", "Pursuit", "Cipher", "Verdict"],
    ),
}


@dataclass(frozen=True)
class DemoData:
    """Paths of the written files and the planted truth (each user's favourite genre)."""

    root: Path
    items: Path
    users: Path
    catalog: Path
    interactions: Path
    favourite_genre: dict[int, str]  # user id -> planted favourite genre


def write_demo_data(
    root: str | Path, *, n_users: int = 600, n_movies: int = 1200, dim: int = 16, seed: int = 7
) -> DemoData:
    """Write the synthetic dataset under ``root`` and return where everything is."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    directions = _genre_directions(rng, dim)
    movies = _movies(rng, n_movies)
    item_vectors = _item_vectors(rng, movies, directions)
    fav, second, user_vectors = _users(rng, n_users, directions)
    ratings = _ratings(rng, user_vectors, item_vectors, movies["movieId"].to_numpy())

    movie_ids = movies["movieId"].to_numpy()
    user_ids = np.arange(1, n_users + 1)
    paths = DemoData(
        root=root,
        items=root / "item_embedding.csv",
        users=root / "user_embedding.csv",
        catalog=root / "movies.csv",
        interactions=root / "ratings.csv",
        favourite_genre={int(u): GENRES[g] for u, g in zip(user_ids, fav)},
    )
    # What Spark users write: `factors.select("id", "features").toPandas().to_csv(...)`.
    write_spark_csv(Embeddings(movie_ids, item_vectors, source="demo items"), paths.items)
    write_spark_csv(Embeddings(user_ids, user_vectors, source="demo users"), paths.users)
    movies.to_csv(
        paths.catalog, index=False
    )  # pandas quotes titles holding commas, as MovieLens does
    ratings.to_csv(paths.interactions, index=False)
    return paths


def _genre_directions(rng: np.random.Generator, dim: int) -> np.ndarray:
    # Orthonormal directions keep genres cleanly apart, so the planted answer is unambiguous.
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q[: len(GENRES)].astype(np.float32)


def _movies(rng: np.random.Generator, n: int) -> pd.DataFrame:
    primary = rng.integers(0, len(GENRES), n)
    has_second = rng.random(n) < 0.35
    second = (primary + rng.integers(1, len(GENRES), n)) % len(GENRES)
    titles, seen = [], set()
    for i in range(n):
        adjectives, nouns = _WORDS[GENRES[primary[i]]]
        base = f"{rng.choice(adjectives)} {rng.choice(nouns)}"
        suffix = ", The" if rng.random() < 0.2 else ""  # MovieLens style; quoted in the CSV
        title, part = base + suffix, 2
        while title in seen:
            title, part = f"{base} {_roman(part)}{suffix}", part + 1
        seen.add(title)
        titles.append(f"{title} ({int(rng.integers(1950, 2024))})")
    genres = [
        GENRES[p] + (f"|{GENRES[s]}" if h else "") for p, s, h in zip(primary, second, has_second)
    ]
    ids = np.sort(rng.choice(np.arange(1, n * 20), n, replace=False))
    return pd.DataFrame({"movieId": ids, "title": titles, "genres": genres})


def _item_vectors(rng, movies: pd.DataFrame, directions: np.ndarray) -> np.ndarray:
    dim = directions.shape[1]
    vectors = np.zeros((len(movies), dim), dtype=np.float32)
    for i, genres in enumerate(movies["genres"]):
        names = genres.split("|")
        vectors[i] += directions[GENRES.index(names[0])]
        for extra in names[1:]:
            vectors[i] += 0.5 * directions[GENRES.index(extra)]
    vectors += 0.15 * rng.standard_normal(vectors.shape).astype(np.float32)
    popularity = rng.lognormal(0.0, 0.25, (len(movies), 1)).astype(np.float32)
    return vectors * popularity


def _users(rng, n: int, directions: np.ndarray):
    fav = rng.integers(0, len(GENRES), n)
    second = (fav + rng.integers(1, len(GENRES), n)) % len(GENRES)
    vectors = 1.5 * directions[fav] + 0.3 * directions[second]
    vectors += 0.25 * rng.standard_normal(vectors.shape).astype(np.float32)
    return fav, second, vectors.astype(np.float32)


def _ratings(rng, users: np.ndarray, items: np.ndarray, movie_ids: np.ndarray) -> pd.DataFrame:
    scores = users @ items.T
    rows = []
    for u in range(users.shape[0]):
        p = np.exp(3.0 * scores[u] - (3.0 * scores[u]).max())
        p /= p.sum()
        count = int(rng.integers(15, 60))
        picked = rng.choice(len(movie_ids), count, replace=False, p=p)
        stars = np.clip(np.round(2.5 + 2 * scores[u, picked] / scores[u].max() * 2) / 2, 0.5, 5.0)
        times = np.sort(rng.integers(1_000_000_000, 1_600_000_000, count))
        rows.append(
            pd.DataFrame(
                {"userId": u + 1, "movieId": movie_ids[picked], "rating": stars, "timestamp": times}
            )
        )
    return pd.concat(rows, ignore_index=True)


def _roman(n: int) -> str:
    return {2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII", 9: "IX"}.get(
        n, str(n)
    )
