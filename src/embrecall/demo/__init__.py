"""The built-in demo: a seeded, synthetic MovieLens-shaped dataset and the whole flow on it."""

from embrecall.demo.data import DemoData, write_demo_data
from embrecall.demo.run import run_demo

__all__ = ["DemoData", "run_demo", "write_demo_data"]
