"""PNG plots of evaluation results (needs matplotlib: ``pip install 'embrecall[eval]'``).

Figures are drawn on the object-oriented API with the Agg canvas, never ``pyplot``: no global
state, no display needed, safe to call from a server or a test.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from embrecall.errors import InvalidArgumentError, require_extra
from embrecall.evaluate.index_recall import RecallPoint
from embrecall.evaluate.quality import QualityReport


def plot_recall_latency(
    points: Sequence[RecallPoint], path: str | os.PathLike, *, k: int | None = None
) -> Path:
    """Recall@k against median single-query latency, one line per query kind.

    Each marker is one search-parameter setting, labelled with the swept value (``nprobe`` or
    ``efSearch``, named in the legend); an index measured at one setting is a single marker.

    Parameters
    ----------
    points : from :func:`embrecall.evaluate.index_recall.measure_index_recall`
    path : where to write the PNG
    k : which cut-off to draw; default the smallest measured
    """
    if not points:
        raise InvalidArgumentError("no recall measurements to plot")
    k = min(p.k for p in points) if k is None else k
    chosen = [p for p in points if p.k == k]
    if not chosen:
        raise InvalidArgumentError(f"no recall measurements at k={k}")
    fig, ax = _figure()
    for name in dict.fromkeys(p.query_kind for p in chosen):
        # In measuring order, which is the sweep order (nprobe / efSearch rising): latency
        # noise on fast queries must not reorder the curve.
        line = [p for p in chosen if p.query_kind == name]
        swept = _swept_param(line)
        label = f"{name} ({line[0].spec}, {line[0].metric})" + (f", by {swept}" if swept else "")
        ax.plot([p.p50_ms for p in line], [p.recall for p in line], marker="o", label=label)
        for p in line:
            if swept:
                ax.annotate(
                    str(p.params[swept]),
                    (p.p50_ms, p.recall),
                    textcoords="offset points",
                    xytext=(3, -9),
                    fontsize=7,
                )
    ax.set_xlabel("median latency of one query (ms)")
    ax.set_ylabel(f"recall@{k} against exact search")
    ax.set_ylim(min(0.0, *(p.recall for p in chosen)) - 0.02, 1.02)
    ax.set_title(f"Recall@{k} vs latency ({chosen[0].queries} sampled queries per kind)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_hit_rate(report: QualityReport, path: str | os.PathLike) -> Path:
    """HitRate@K against K for the model and the popularity baseline.

    Parameters
    ----------
    report : from :func:`embrecall.evaluate.quality.evaluate_quality`
    path : where to write the PNG
    """
    if not report.rows:
        raise InvalidArgumentError("no quality measurements to plot")
    fig, ax = _figure()
    for method in dict.fromkeys(r.method for r in report.rows):
        rows = sorted((r for r in report.rows if r.method == method), key=lambda r: r.k)
        ax.plot([r.k for r in rows], [r.hit_rate for r in rows], marker="o", label=method)
    ax.set_xscale("log")
    ks = sorted({r.k for r in report.rows})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("K (length of the recommendation list)")
    ax.set_ylabel("HitRate@K (users with a held-out item in their top K)")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(f"HitRate@K on held-out interactions ({report.info.get('users', '?')} users)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _swept_param(line: Sequence[RecallPoint]) -> str | None:
    """The search parameter that varies along one query kind's points, if any."""
    for key in line[0].params:
        if len({p.params.get(key) for p in line}) > 1:
            return key
    return None


def _figure():
    figure_mod = require_extra("matplotlib.figure", "eval")
    fig = figure_mod.Figure(figsize=(7, 4.5), dpi=110)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
