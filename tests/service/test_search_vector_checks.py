"""POST /v1/search refuses query vectors faiss cannot score: 422 JSON, never 200 with null scores.

The shared server's indexes have dimension 16.
"""

from __future__ import annotations

import pytest

from helpers import import_extra

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

DIM = 16


def _error(r) -> dict:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_vector" and "Traceback" not in r.text
    return error


@pytest.mark.parametrize("query", ["recommend", "similar_items", "similar_users"])
def test_a_vector_whose_squared_norm_overflows_is_refused(client, query):
    vector = [3e38, 3e38] + [0.0] * (DIM - 2)  # every value a finite float32
    error = _error(client.post("/v1/search", json={"vector": vector, "query": query}))
    assert "overflows float32" in error["message"]
    batch = {"vectors": [[0.1] * DIM, vector], "query": query}
    assert "overflows float32" in _error(client.post("/v1/search", json=batch))["message"]


@pytest.mark.parametrize("query", ["similar_items", "similar_users"])
def test_a_zero_vector_is_refused_for_cosine(client, query):
    r = client.post("/v1/search", json={"vector": [0.0] * DIM, "query": query})
    assert "all zeros" in _error(r)["message"]


def test_a_zero_vector_is_a_valid_inner_product_query(client):
    r = client.post("/v1/search", json={"vector": [0.0] * DIM, "query": "recommend", "k": 3})
    assert r.status_code == 200 and all(x["score"] == 0.0 for x in r.json()["results"])
