"""The scale benchmark runs end to end on a tiny size: its one command must not rot."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from helpers import REPO_ROOT, SHARED_DATA, import_extra

FAISS_PEERS = {"faiss IVF-Flat", "faiss HNSW32", "faiss IVF-PQ-RFlat"}


def _bench_module():
    path = REPO_ROOT / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_bench_scale_tunes_every_system_and_reports_held_out_recall(tmp_path, capsys):
    import_extra("matplotlib")
    bench = _bench_module()
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    argv = ["--sizes", "3000", "--family", "clustered", "--tune-queries", "100"]
    argv += ["--report-queries", "100", "--sweep-queries", "25"]
    assert bench.main([*argv, "--out", str(out), "--plot", str(png)]) == 0
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["family"] == "clustered" and (result["n"], result["dim"]) == (3000, 64)
    assert (result["tune_queries"], result["report_queries"]) == (100, 100)
    assert result["choice"]["spec"] == "Flat"  # 3,000 x 64 is searched exactly
    systems = result["systems"]
    expected = {"embrecall", "raw faiss"} | FAISS_PEERS
    expected |= {lib for lib in ("hnswlib", "usearch") if _installed(lib)}
    assert set(systems) == expected
    for name, s in systems.items():
        assert 0 <= s["heldout_recall"] <= 1 and 0 < s["p50_ms"] <= s["p99_ms"], name
        assert s["build_s"] >= 0 and s["bytes_per_vector"] > 0 and s["batch_qps"] > 0, name
        assert s["peer"] == (name not in ("embrecall", "raw faiss")), name
        if s["peer"]:  # tuned on the tuning queries to the target: near it on held-out ones
            assert s["tuning"]["reached"] and s["heldout_recall"] >= 0.85, name
    assert systems["embrecall"]["heldout_recall"] == 1.0  # exact
    assert result["best_peer"] in FAISS_PEERS | {"hnswlib", "usearch"}
    assert result["vs_best_peer"] > 0
    assert result["overhead_p50"] > 0 and result["overhead_paired"] > 0
    assert result["embrecall_build"]["total_s"] >= result["embrecall_build"]["build_s"]
    assert {p["system"] for p in result["points"]} == set(systems)
    assert png.stat().st_size > 10_000
    assert "| clustered 3,000 x 64 | embrecall | `Flat` |" in out.with_suffix(".md").read_text()
    assert "held-out queries" in capsys.readouterr().out


def test_bench_scale_tunes_embrecall_on_tuning_queries_and_shows_its_race(tmp_path, capsys):
    bench = _bench_module()
    out = tmp_path / "scale.json"
    argv = ["--sizes", "10000", "--family", "clustered", "--tune-queries", "200"]
    argv += ["--report-queries", "200", "--sweep-queries", "25", "--peers"]
    argv += ["--out", str(out), "--plot", ""]
    import embrecall.index.choice as choice

    seen = {}
    real_choice = bench.auto_choice

    def spied_choice(items, queries, metric, **kw):
        seen.update(queries=queries, target=kw["target_recall"], n=len(items))
        return real_choice(items, queries, metric, **kw)

    import embrecall.index.race as race

    def approximate_only(*args, **kw):  # at 10,000 vectors a scan may win: leave it out
        return [c for c in choice.race_candidates(*args, **kw) if c.family != "flat"]

    # 10,000 x 64 would be searched exactly: lower the latency target to get a race.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(choice, "DEFAULT_MAX_LATENCY_MS", 0.01)
        patch.setattr(race, "race_candidates", approximate_only)
        patch.setattr(bench, "auto_choice", spied_choice)
        assert bench.main(argv) == 0
    # the race (and embrecall's tuning) sees the tuning queries only, never the held-out ones
    assert seen["n"] == 10000 and seen["target"] == 0.95 and len(seen["queries"]) == 200
    (result,) = json.loads(out.read_text())["results"]
    assert sum(c["won"] for c in result["race"]) == 1
    assert "embrecall's race of candidate kinds" in capsys.readouterr().out
    assert "| `HNSW32` |" in out.with_suffix(".md").read_text()
    (won,) = [c for c in result["race"] if c["won"]]
    assert result["choice"]["spec"] == won["spec"]
    assert set(result["systems"]) == {"embrecall", "raw faiss"}
    assert result["best_peer"] is None and result["vs_best_peer"] is None
    ours = result["systems"]["embrecall"]
    # the race's timing decides the kind: an IVF (nprobe) or a graph (efSearch)
    (param,) = [name for name in ("nprobe", "efSearch") if name in ours["setting"]]
    assert ours["tuning"]["reached"] and ours["heldout_recall"] >= 0.9
    by_system: dict[str, dict] = {"embrecall": {}, "raw faiss": {}}
    for p in result["points"]:
        by_system[p["system"]][p["param"][param]] = p["recall"]
    # the same index with the same parameters: the same answers, except where a tiny nprobe
    # finds fewer than k and embrecall widens the search for the rest
    ours_sweep, raw_sweep = by_system["embrecall"], by_system["raw faiss"]
    assert ours_sweep.keys() == raw_sweep.keys() and ours["setting"][param] in ours_sweep
    assert all(ours_sweep[v] >= raw_sweep[v] for v in ours_sweep)
    assert all(ours_sweep[v] == raw_sweep[v] for v in ours_sweep if v >= 8)


def test_als_family_tiles_the_real_factors_and_keeps_their_duplicates():
    if not (SHARED_DATA / "spark-als").exists():
        pytest.skip("no ../shared/data/spark-als")
    bench = _bench_module()
    items, tune_q, report_q, _ = bench.family_vectors("als", 25_000, 64, 50)
    assert items.shape == (25_000, 10) and tune_q.shape == report_q.shape == (50, 10)
    real = items[:9724]
    _, real_counts = np.unique(real, axis=0, return_counts=True)
    _, copy_counts = np.unique(items[9724:19448], axis=0, return_counts=True)
    assert sorted(copy_counts) == sorted(real_counts)  # every copy keeps the real duplicates
    assert not np.isin(items[9724:19448].view("V40"), real.view("V40")).any()  # perturbed


def test_p50_at_the_target_is_read_between_the_settings_around_it():
    bench = _bench_module()
    points = [
        {"system": "a", "recall": 0.90, "p50_ms": 1.0},
        {"system": "a", "recall": 0.94, "p50_ms": 2.0},
        {"system": "a", "recall": 0.98, "p50_ms": 4.0},
        {"system": "b", "recall": 0.96, "p50_ms": 0.5},
        {"system": "c", "recall": 0.93, "p50_ms": 0.1},
    ]
    assert bench.p50_at_recall(points, "a", 0.95) == 2.5
    assert bench.p50_at_recall(points, "b", 0.95) == 0.5  # its first setting is past it
    assert bench.p50_at_recall(points, "c", 0.95) is None  # never reached
