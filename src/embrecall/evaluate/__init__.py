"""Evaluation: measure, never mutate.

Two questions, kept apart:

* how close is each approximate index to exact search
  (:func:`~embrecall.evaluate.index_recall.measure_index_recall`), and
* how good are the recommendations on held-out interactions, next to a popularity baseline
  (:func:`~embrecall.evaluate.split.time_split`, :func:`~embrecall.evaluate.train.train_als`,
  :func:`~embrecall.evaluate.quality.evaluate_quality`).

Plots need matplotlib and training needs ``implicit``: ``pip install 'embrecall[eval]'``.
Names load on first use, so that ``embrecall --help`` (which registers the ``eval`` and
``train`` commands from :mod:`embrecall.evaluate.commands`) does not import faiss.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "RecallPoint": "index_recall",
    "measure_index_recall": "index_recall",
    "QualityReport": "quality",
    "QualityRow": "quality",
    "evaluate_quality": "quality",
    "Split": "split",
    "time_split": "split",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'embrecall.evaluate' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"embrecall.evaluate.{module}"), name)
