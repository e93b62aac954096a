"""Query kinds: what each one searches and what it leaves out. The one table of both.

``recommend`` asks with a user's vector and answers items, leaving out the items the user has
seen; ``similar_items`` / ``similar_users`` ask with an item's (user's) vector and answer items
(users), leaving out the query itself. Everything that needs a query kind's spaces or its
exclusions (the recommender, the service, batch, evaluation, the monitor) reads them here.
This module is light (no faiss) so that readers of stored results can use it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from embrecall.index.faiss_index import Metric

Space = Literal["users", "items"]
Exclusion = Literal["seen", "self"]

#: query kind -> (space its query ids come from, space whose ids come back)
QUERY_SPACES: dict[str, tuple[Space, Space]] = {
    "recommend": ("users", "items"),
    "similar_items": ("items", "items"),
    "similar_users": ("users", "users"),
}
#: query kind -> what a query by id leaves out inside the search (by vector: nothing)
EXCLUSIONS: dict[str, Exclusion] = {
    "recommend": "seen",  # the items the user has seen (when interactions were loaded)
    "similar_items": "self",  # never answer an item with itself
    "similar_users": "self",
}
#: id words used in messages about a space's ids
ID_WHAT: dict[str, str] = {"users": "user id", "items": "item id"}


@dataclass(frozen=True)
class QueryKind:
    """What one query kind searches: the space its ids come from and the index it searches."""

    name: str  # "recommend" | "similar_items" | "similar_users"
    query_space: str  # "users" | "items": where a query id's vector comes from
    target_space: str  # the space whose ids come back
    metric: Metric
    spec: str = "Flat"
    search_params: Mapping[str, int] = field(default_factory=dict)

    # cached: every query reads these, and the name took microseconds to build each time
    @cached_property
    def index_name(self) -> str:
        """Query kinds with the same space, metric and spec share one index."""
        return f"{self.target_space}-{self.metric}-{_slug(self.spec)}"

    @cached_property
    def exclusion(self) -> Exclusion | None:
        """What a query by id leaves out: ``"seen"``, ``"self"`` or nothing."""
        return EXCLUSIONS.get(self.name)

    @cached_property
    def excludes_seen(self) -> bool:
        return self.exclusion == "seen"

    @cached_property
    def excludes_self(self) -> bool:
        return self.exclusion == "self"


def query_space(name: str) -> str:
    """The space a query kind's query ids come from."""
    return QUERY_SPACES[name][0]


def target_space(name: str) -> str:
    """The space a query kind answers with."""
    return QUERY_SPACES[name][1]


def _slug(spec: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in spec)
