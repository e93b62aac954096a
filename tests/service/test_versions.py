"""The version root: atomic publish, pointer, rollback, refusals; and its CLI commands."""

from __future__ import annotations

import json
import os
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embrecall.cli import main as service_main
from embrecall.errors import ArtifactError, InvalidArgumentError
from embrecall.versions import (
    SingleArtifact,
    UnknownVersionError,
    VersionRoot,
    check_version_id,
    open_target,
)

from .support import corrupt


def test_publish_copies_verifies_and_points(tmp_path, artifacts):
    root = VersionRoot(tmp_path / "root")
    assert root.current() is None
    assert root.publish(artifacts["v1"], "v1") == "v1"
    assert root.current() == "v1"
    assert (root.path / "CURRENT").read_text() == "v1\n"
    assert (root.path / "versions" / "v1" / "manifest.json").is_file()
    assert artifacts["v1"].is_dir()  # copied, not moved
    # no staging directory or temporary pointer is left behind
    assert sorted(p.name for p in root.path.iterdir()) == [
        ".lock",
        "CURRENT",
        "HISTORY",
        "versions",
    ]


def test_default_ids_are_utc_times_and_unique(tmp_path, artifacts):
    root = VersionRoot(tmp_path / "root")
    a = root.publish(artifacts["v1"])
    b = root.publish(artifacts["v1"])
    assert a != b
    assert all(re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", v) for v in (a, b))
    assert root.ids() == [a, b] and root.current() == b


def test_existing_id_is_refused_and_nothing_changes(root, artifacts):
    with pytest.raises(ArtifactError, match="already exists"):
        root.publish(artifacts["v2"], "v1")
    assert root.ids() == ["v1"] and root.current() == "v1"


def test_corrupt_source_is_refused_before_the_root_is_touched(tmp_path, root, artifacts):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(artifacts["v2"], bad)
    corrupt(bad / "items" / "vectors.npy")
    with pytest.raises(ArtifactError, match="SHA-256"):
        root.publish(bad, "v2")
    assert root.ids() == ["v1"] and root.current() == "v1"
    assert not [p for p in root.path.iterdir() if p.name.startswith(".staging")]


def test_failing_check_leaves_no_version(root, artifacts):
    def check(path):
        assert (path / "manifest.json").is_file()  # runs on the verified copy
        raise ArtifactError("canary says no")

    with pytest.raises(ArtifactError, match="canary says no"):
        root.publish(artifacts["v2"], "v2", check=check)
    assert root.ids() == ["v1"] and root.current() == "v1"
    assert not [p for p in root.path.iterdir() if p.name.startswith(".staging")]


def test_move_takes_the_directory(tmp_path, artifacts):
    import shutil

    src = tmp_path / "to-move"
    shutil.copytree(artifacts["v1"], src)
    root = VersionRoot(tmp_path / "root")
    root.publish(src, "m1", move=True)
    assert not src.exists() and root.has("m1")


def test_stage_then_activate_then_rollback_walks_back(root, artifacts):
    root.publish(artifacts["v2"], "v2", activate=False)
    assert root.current() == "v1"
    assert root.activate("v2") == "v1"
    root.publish(artifacts["v1"], "v3")
    assert root.current() == "v3"
    assert root.rollback() == "v2"
    assert root.rollback() == "v1"
    with pytest.raises(ArtifactError, match="no earlier version"):
        root.rollback()
    assert root.current() == "v1"
    actions = [e["action"] for e in root.history()["log"]]
    assert actions == ["publish", "stage", "activate", "publish", "rollback", "rollback"]


def test_rollback_skips_an_entry_left_by_a_crash(root, artifacts):
    root.publish(artifacts["v2"], "v2")
    history = root.history()
    history["previous"].append("v2")  # as if the pointer write never happened after this one
    root._write_history(history)
    assert root.rollback() == "v1"


def test_activate_unknown_version(root):
    with pytest.raises(UnknownVersionError):
        root.activate("nope")
    with pytest.raises(InvalidArgumentError):
        root.activate("../v1")


def test_garbage_pointer_is_an_artifact_error(root):
    (root.path / "CURRENT").write_text("../../etc\n")
    with pytest.raises(ArtifactError, match="does not hold a version id"):
        root.current()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=string.ascii_letters + string.digits + "_.-/\\ \x00é", max_size=70))
def test_version_ids_are_never_paths(text):
    try:
        vid = check_version_id(text)
    except InvalidArgumentError:
        return
    assert 1 <= len(vid) <= 64 and not vid.startswith(".")
    assert os.sep not in vid and "\\" not in vid and vid != ".."


def test_open_target_tells_artifact_from_root(tmp_path, root, artifacts):
    assert isinstance(open_target(artifacts["v1"]), SingleArtifact)
    assert isinstance(open_target(root.path), VersionRoot)
    with pytest.raises(ArtifactError, match="neither an artifact"):
        open_target(tmp_path)
    single = SingleArtifact(artifacts["v1"])
    assert single.current() == "artifact-v1" and single.path_of("artifact-v1") == artifacts["v1"]
    with pytest.raises(UnknownVersionError):
        single.path_of("other")


def test_cli_publish_rollback_versions(tmp_path, artifacts, capsys):
    root = tmp_path / "root"
    assert service_main(["publish", str(artifacts["v1"]), str(root), "--id", "v1"]) == 0
    assert "published v1" in capsys.readouterr().out
    assert service_main(["publish", str(artifacts["v2"]), str(root), "--id", "v2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "version": "v2",
        "root": str(root),
        "current": "v2",
    }
    assert service_main(["versions", str(root)]) == 0
    out = capsys.readouterr().out
    assert "* " in out and "v1" in out and "rollback goes to: v1" in out
    assert service_main(["rollback", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["current"] == "v1"
    assert service_main(["rollback", str(root), "--to", "v2"]) == 0
    assert "current is now v2 (was v1)" in capsys.readouterr().out
    assert service_main(["versions", str(root), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [v["id"] for v in listing["versions"]] == ["v1", "v2"] and listing["current"] == "v2"


def test_cli_errors_are_one_line(tmp_path, artifacts, capsys):
    root = tmp_path / "root"
    assert service_main(["rollback", str(root)]) == 1
    assert service_main(["publish", str(artifacts["v1"]), str(root), "--id", "../x"]) == 1
    assert service_main(["versions", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("embrecall: error: ") for line in err)


def test_cli_publish_runs_the_canary(tmp_path, capsys):
    from .support import save_broken_index_version

    broken = save_broken_index_version(tmp_path, "broken", seed=3)
    root = tmp_path / "root"
    assert service_main(["publish", str(broken), str(root), "--id", "b1"]) == 1
    assert "canary recall@10" in capsys.readouterr().err
    assert not VersionRoot(root).ids()
    assert service_main(["publish", str(broken), str(root), "--id", "b1", "--no-check"]) == 0
