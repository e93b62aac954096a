"""Live updates over immutable versions: a durable change log per version, a small exact delta
plus tombstones merged inside every search, and compaction into the next version.

- :mod:`~embrecall.live.changelog`: the append-only, fsynced log of one version
- :mod:`~embrecall.live.changes`: change requests validated into log records
- :mod:`~embrecall.live.delta`: pending changes as immutable snapshots
- :mod:`~embrecall.live.overlay`: answers of a version with its pending changes merged in
- :mod:`~embrecall.live.feed`: a served version's log tailed into its overlay, and carry-over
- :mod:`~embrecall.live.fold`: a version plus its changes as build inputs (compaction)
- :mod:`~embrecall.live.apply`: ``embrecall update`` and ``embrecall compact``

See docs/freshness.md.
"""
