"""Moved to :mod:`embrecall.evaluate.train`; this module re-exports it so existing scripts work."""

from embrecall.evaluate.train import Backend, Weighting, train_als, write_spark_csv

__all__ = ["Backend", "Weighting", "train_als", "write_spark_csv"]
