"""The core imports without the eval extras, and a missing extra is named in the error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from embrecall.errors import MissingExtraError
from embrecall.evaluate.plots import plot_hit_rate
from embrecall.evaluate.quality import QualityReport, QualityRow

_HIDE_EXTRAS = (
    "import sys; sys.modules.update(dict.fromkeys("
    "['implicit', 'matplotlib', 'scipy', 'prometheus_client', 'pyspark']))"
)


def test_evaluation_monitor_and_commands_import_without_extras():
    code = (
        f"{_HIDE_EXTRAS}; import embrecall.evaluate, embrecall.evaluate.commands, "
        "embrecall.evaluate.plots, embrecall.evaluate.train, embrecall.service.monitor, "
        "embrecall.monitor, embrecall.train; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_missing_extras_name_what_to_install():
    code = (
        f"{_HIDE_EXTRAS}\n"
        "from embrecall.errors import MissingExtraError\n"
        "from embrecall.interactions import Interactions\n"
        "from embrecall.evaluate.train import train_als\n"
        "try:\n"
        "    train_als(Interactions([1], [2]))\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'embrecall[eval]'" in out.stdout


def test_plot_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    report = QualityReport([QualityRow("model", 10, 0.5, 0.1, 0.2, 0.3)], {"users": 1})
    with pytest.raises(MissingExtraError, match=r"embrecall\[eval\]"):
        plot_hit_rate(report, tmp_path / "x.png")
