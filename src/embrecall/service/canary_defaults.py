"""The canary's defaults, in one place for `publish`, `rollback` and `serve`: a version that
publish accepted must not be refused by a server checking the same data. Light on purpose (no
numpy, no faiss), so the CLI can read them without loading the search stack."""

DEFAULT_QUERIES = 20  # query ids sampled per query kind
DEFAULT_K = 10  # results compared per query
DEFAULT_MIN_RECALL = 0.9  # mean recall@k, ties tolerated, every query kind must reach
