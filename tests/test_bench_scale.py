"""The scale benchmark runs end to end on a tiny size: its one command must not rot."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from helpers import REPO_ROOT, import_extra


def _bench_module():
    path = REPO_ROOT / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_bench_scale_measures_every_engine_and_writes_table_json_and_plot(tmp_path, capsys):
    import_extra("matplotlib")
    bench = _bench_module()
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    argv = ["--sizes", "3000", "--queries", "100", "--latency-queries", "30", "--no-als"]
    assert bench.main([*argv, "--out", str(out), "--plot", str(png)]) == 0
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["choice"]["spec"] == "Flat"  # 3,000 x 64 is searched exactly
    engines = set(result["engines"])
    assert {"embrecall", "raw faiss"} <= engines
    for point in result["points"]:
        assert 0 <= point["recall"] <= 1 and point["p50_ms"] > 0 and point["batch_qps"] > 0
    assert result["at_target"]["embrecall"]["recall"] == 1.0  # exact
    assert result["overhead_p50"] > 0 and result["overhead_paired"] > 0
    assert png.stat().st_size > 10_000
    assert "fastest at recall@10" in capsys.readouterr().out


def test_bench_scale_compares_graph_libraries_beside_the_chosen_index(tmp_path):
    import_extra("hnswlib")
    import_extra("usearch")
    bench = _bench_module()
    out = tmp_path / "scale.json"
    argv = ["--sizes", "20000", "--queries", "100", "--latency-queries", "20", "--no-als"]
    argv += ["--mips-up-to", "0", "--out", str(out), "--plot", ""]
    import embrecall.index.choice as choice

    # 20,000 x 64 would be searched exactly: lower the latency target to get an ANN index.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(choice, "DEFAULT_MAX_LATENCY_MS", 0.01)
        assert bench.main(argv) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["choice"]["spec"].startswith("IVF")
    assert set(result["engines"]) == {"embrecall", "raw faiss", "hnswlib", "usearch"}
    by_engine: dict[str, list] = {}
    for p in result["points"]:
        by_engine.setdefault(p["engine"], []).append(p)
    assert all(set(p["param"]) == {"ef"} for p in by_engine["hnswlib"] + by_engine["usearch"])
    assert all(set(p["param"]) == {"nprobe"} for p in by_engine["embrecall"])
    for engine, points in by_engine.items():
        recalls = [p["recall"] for p in points]
        assert recalls[-1] >= 0.9 and recalls[-1] >= recalls[0], engine
    # embrecall and raw faiss search the same index with the same parameters: the same answers,
    # except where a tiny nprobe finds fewer than k and embrecall widens the search for the rest.
    ours = {p["param"]["nprobe"]: p["recall"] for p in by_engine["embrecall"]}
    raw = {p["param"]["nprobe"]: p["recall"] for p in by_engine["raw faiss"]}
    assert ours.keys() == raw.keys()
    assert all(ours[v] >= raw[v] for v in ours)
    assert all(ours[v] == raw[v] for v in ours if v >= 8)
    assert result["tuning"]["reached"]
