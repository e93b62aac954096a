"""Bad requests get a 4xx with a JSON error body, never a 5xx, and the server keeps serving.

The shared server has max_k=100, max_batch=8, max_body_bytes=16384 and index dimension 16.
"""

from __future__ import annotations

import json
import math
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import import_extra

from .support import ITEM, USERS

import_extra("fastapi")
import_extra("uvicorn")
import_extra("httpx")

USER = USERS[0]
DIM = 16
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def still_serving(client):
    """After every test, the server still answers a good request."""
    yield
    r = client.get(f"/v1/users/{USER}/recommendations?k=3")
    assert r.status_code == 200 and len(r.json()["results"]) == 3


def expect_error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) >= {"code", "message"} and error["message"]
    assert "Traceback" not in r.text
    if code is not None:
        assert error["code"] == code, error
    return error


def post_raw(client, path: str, body: bytes):
    return client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "path",
    [
        "/v1/users/999999/recommendations",
        "/v1/users/999999/similar",
        "/v1/items/999999/similar",
        "/v1/users/999999/seen",
    ],
)
def test_unknown_id_is_404(client, path):
    error = expect_error(client.get(path), 404, "unknown_id")
    assert "999999" in error["message"] and error["ids"] == [999999]


def test_unknown_id_in_a_batch_names_it(client):
    error = expect_error(
        client.post("/v1/users/recommendations", json={"ids": [USER, 5, 6]}), 404, "unknown_id"
    )
    assert error["ids"] == [5, 6]


def test_id_of_the_wrong_kind(client):
    expect_error(client.get("/v1/users/abc/recommendations"), 422, "invalid_id")
    expect_error(client.post("/v1/items/similar", json={"ids": [ITEM, "x"]}), 422, "invalid_id")


@pytest.mark.parametrize("k", ["0", "-1", "101", "1000000000000"])
def test_k_out_of_range(client, k):
    error = expect_error(client.get(f"/v1/users/{USER}/recommendations?k={k}"), 422, "invalid_k")
    assert "between 1 and 100" in error["message"]
    expect_error(
        client.post("/v1/users/similar", json={"ids": [USER], "k": int(k)}), 422, "invalid_k"
    )


@pytest.mark.parametrize("k", ["abc", "1.5", "", "true"])
def test_k_not_an_integer(client, k):
    expect_error(client.get(f"/v1/items/{ITEM}/similar?k={k}"), 422, "invalid_request")


def test_wrong_dimension(client):
    error = expect_error(
        client.post("/v1/search", json={"vector": [0.1] * 15}), 422, "dimension_mismatch"
    )
    assert error["message"] == "query has dimension 15, index has 16"
    expect_error(client.post("/v1/search", json={"vectors": [[0.1] * 16, [0.1] * 17]}), 422)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_in_a_vector(client, literal):
    body = b'{"vector": [' + b", ".join([b"0.5"] * 15 + [literal]) + b"]}"
    error = expect_error(post_raw(client, "/v1/search", body), 422, "invalid_vector")
    assert "NaN or infinity" in error["message"]


def test_beyond_float32_is_infinity(client):
    error = expect_error(client.post("/v1/search", json={"vector": [1e39] + [0.0] * 15}), 422)
    assert error["code"] == "invalid_vector"


@pytest.mark.parametrize(
    "body", [b'{"ids": [1000,', b"not json", b'{"vector": [0.1]]}', b"\xff\xfe"]
)
def test_malformed_json(client, body):
    expect_error(post_raw(client, "/v1/users/recommendations", body), 400, "malformed_json")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": []},
        {"ids": [True]},
        {"ids": [1.5]},
        {"ids": USER},
        {"ids": [USER], "k": "x"},
        {"ids": [USER], "surprise": 1},
        {"ids": [USER], "exclude": "abc"},
        [USER],
    ],
)
def test_body_does_not_fit_the_schema(client, body):
    expect_error(client.post("/v1/users/recommendations", json=body), 422, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        {"k": 3},
        {"vector": [0.1] * 16, "vectors": [[0.1] * 16]},
        {"vector": ["a"] * 16},
        {"vector": [0.1] * 16, "space": "planets"},
        {"vector": [0.1] * 16, "query": "similar_users", "space": "items"},
    ],
)
def test_bad_search_requests(client, body):
    expect_error(client.post("/v1/search", json=body), 422)


def test_too_many_ids(client):
    error = expect_error(
        client.post("/v1/users/similar", json={"ids": USERS[:9]}), 422, "too_many_ids"
    )
    assert "9 ids" in error["message"] and "limit is 8" in error["message"]
    expect_error(client.post("/v1/search", json={"vectors": [[0.1] * 16] * 9}), 422, "too_many_ids")
    error = expect_error(
        client.get(f"/v1/users/{USER}/similar?exclude=" + ",".join(map(str, USERS[1:11]))),
        422,
        "too_many_ids",
    )
    assert "10 excluded ids" in error["message"]
    body = {"ids": [USER], "exclude": [list(range(9))]}
    expect_error(client.post("/v1/users/recommendations", json=body), 422, "too_many_ids")


def test_body_over_the_limit_is_413(client):
    big = json.dumps({"ids": [USER], "exclude": list(range(5000))}).encode()
    assert len(big) > 16_384
    error = expect_error(post_raw(client, "/v1/users/recommendations", big), 413, "body_too_large")
    assert "16384" in error["message"]


def test_chunked_body_over_the_limit_is_413(client):
    def chunks():
        yield b'{"ids": [1000], "exclude": ['
        for _ in range(3000):
            yield b"123456,"
        yield b"1]}"

    r = client.post(
        "/v1/users/recommendations", content=chunks(), headers={"content-type": "application/json"}
    )
    expect_error(r, 413, "body_too_large")


def test_unknown_route_and_method(client):
    expect_error(client.get("/v1/nothing"), 404, "not_found")
    expect_error(client.delete(f"/v1/users/{USER}/recommendations"), 405, "method_not_allowed")


def test_search_parameter_caps(client):
    expect_error(client.get(f"/v1/users/{USER}/recommendations?nprobe=0"), 422, "invalid_argument")
    expect_error(client.get(f"/v1/users/{USER}/recommendations?ef_search=5000"), 422)
    # on an exact index the parameters are accepted and change nothing
    assert client.get(f"/v1/users/{USER}/recommendations?nprobe=4").status_code == 200


# -- properties ------------------------------------------------------------------------------
def _never_5xx(r) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert "error" in r.json() and "Traceback" not in r.text


@PROPERTY
@given(raw=st.text(min_size=1, max_size=40))
def test_any_path_id(client, raw):
    r = client.get(f"/v1/users/{quote(raw, safe='')}/recommendations?k=2")
    _never_5xx(r)
    assert r.status_code in (200, 404, 422)


@PROPERTY
@given(k=st.one_of(st.integers(), st.text(max_size=12)))
def test_any_k(client, k):
    r = client.get(f"/v1/items/{ITEM}/similar", params={"k": k})
    _never_5xx(r)
    assert (r.status_code == 200) == (
        isinstance(k, int)
        and 1 <= k <= 100
        or (
            isinstance(k, str)
            and k.strip().isascii()
            and k.strip().isdigit()
            and 1 <= int(k) <= 100
        )
    )


finite = st.floats(width=32, allow_nan=False, allow_infinity=False)
anything = st.floats(allow_nan=True, allow_infinity=True)


@PROPERTY
@given(vector=st.lists(st.one_of(finite, anything), min_size=0, max_size=20))
def test_any_vector(client, vector):
    # json.dumps writes NaN/Infinity literals, as a careless client would
    r = post_raw(client, "/v1/search", json.dumps({"vector": vector, "k": 3}).encode())
    _never_5xx(r)
    ok = len(vector) == DIM and all(math.isfinite(x) and abs(x) < 3.4e38 for x in vector)
    assert (r.status_code == 200) == ok, r.text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@PROPERTY
@given(
    body=st.dictionaries(
        st.sampled_from(["ids", "k", "exclude", "exclude_seen", "nprobe", "x"]),
        json_values,
        max_size=5,
    )
)
def test_any_batch_body(client, body):
    _never_5xx(client.post("/v1/users/recommendations", json=body))


@PROPERTY
@given(body=st.binary(max_size=64))
def test_any_bytes(client, body):
    _never_5xx(post_raw(client, "/v1/search", body))
