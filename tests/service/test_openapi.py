"""The OpenAPI schema documents every refusal an operation can give, and the server's limits.

The shared server has max_k=100, max_batch=8, max_exclude=8, max_body_bytes=16384 and an admin
key; its read endpoints are open.
"""

from __future__ import annotations

import pytest

from helpers import import_extra

from .support import READ_KEY, USERS

import_extra("fastapi")

USER = USERS[0]
BATCH = ["/v1/users/recommendations", "/v1/users/similar", "/v1/items/similar"]


@pytest.fixture(scope="module")
def schema(client) -> dict:
    return client.get("/openapi.json").json()


def _responses(schema, path, method="get") -> dict:
    return schema["paths"][path][method]["responses"]


def _error_model(response) -> str:
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


def test_each_operation_documents_its_refusals_in_the_error_shape(schema):
    for path in BATCH + ["/v1/search"]:
        responses = _responses(schema, path, "post")
        assert {"400", "413", "422", "503"} <= set(responses), (path, responses)
        assert _error_model(responses["400"]) == "ErrorResponse"
        assert "malformed_json" in responses["400"]["description"]
    for path in BATCH:
        assert "404" in _responses(schema, path, "post")
    for path in ["/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar"]:
        responses = _responses(schema, path)
        assert {"200", "404", "422", "503"} <= set(responses)
        assert "401" not in responses  # no read key on this server
        assert all(_error_model(responses[s]) == "ErrorResponse" for s in ("404", "422", "503"))
    admin = _responses(schema, "/v1/admin/versions/{version}/load", "post")
    assert {"401", "403", "404", "409", "422"} <= set(admin)
    assert "503" in _responses(schema, "/readyz")
    assert "text/plain" in _responses(schema, "/metrics")["200"]["content"]
    # FastAPI's own 422 shape ({"detail": [...]}) is not what the server answers
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_401_is_documented_where_a_read_key_applies(serve, artifacts):
    server = serve(artifacts["v1"], api_key=READ_KEY)
    with server.client() as c:
        keyed = c.get("/openapi.json").json()
        assert c.get(f"/v1/users/{USER}/recommendations").status_code == 401
    assert "401" in _responses(keyed, "/v1/users/{user_id}/recommendations")
    assert "401" in _responses(keyed, "/v1/search", "post")
    assert "401" not in _responses(keyed, "/healthz")


def _query_param(schema, path, name) -> dict:
    params = schema["paths"][path]["get"]["parameters"]
    return next(p for p in params if p["name"] == name)["schema"]


def _integer(node) -> dict:
    return next((b for b in node.get("anyOf", [node]) if b.get("type") == "integer"), node)


def _array(node) -> dict:
    return next(b for b in node.get("anyOf", [node]) if b.get("type") == "array")


def test_limits_are_schema_constraints_that_match_what_is_enforced(schema, client):
    path = "/v1/users/{user_id}/recommendations"
    max_k = _integer(_query_param(schema, path, "k"))["maximum"]
    assert max_k == 100 and _integer(_query_param(schema, path, "k"))["minimum"] == 1
    url = f"/v1/users/{USER}/recommendations"
    assert client.get(url, params={"k": max_k}).status_code == 200
    assert client.get(url, params={"k": max_k + 1}).status_code == 422
    assert client.get(url, params={"k": 0}).status_code == 422
    nprobe = _integer(_query_param(schema, path, "nprobe"))["maximum"]
    assert client.get(url, params={"nprobe": nprobe}).status_code == 200
    assert client.get(url, params={"nprobe": nprobe + 1}).status_code == 422
    limit = _integer(_query_param(schema, "/v1/items/search", "limit"))["maximum"]
    assert limit == max_k
    q = _query_param(schema, "/v1/items/search", "q")
    assert q["maxLength"] == 200 and q["minLength"] == 1

    body = schema["components"]["schemas"]["RecommendBatchRequest"]["properties"]
    assert _integer(body["k"])["maximum"] == max_k
    max_batch = _array(body["ids"])["maxItems"]
    assert max_batch == 8
    post = "/v1/users/recommendations"
    assert client.post(post, json={"ids": USERS[:max_batch]}).status_code == 200
    assert client.post(post, json={"ids": USERS[: max_batch + 1]}).status_code == 422
    flat, nested = sorted(
        (b for b in body["exclude"]["anyOf"] if b.get("type") == "array"),
        key=lambda b: b["items"].get("type") == "array",
    )
    max_exclude = flat["maxItems"]
    assert max_exclude == nested["items"]["maxItems"] == 8 and nested["maxItems"] == max_batch
    ok = {"ids": [USER], "exclude": list(range(max_exclude))}
    assert client.post(post, json=ok).status_code == 200
    over = {"ids": [USER], "exclude": list(range(max_exclude + 1))}
    assert client.post(post, json=over).status_code == 422
    search = schema["components"]["schemas"]["SearchRequest"]["properties"]
    assert _array(search["vectors"])["maxItems"] == max_batch
    described = schema["paths"][post]["post"]["requestBody"]["description"]
    assert "16384 bytes" in described
