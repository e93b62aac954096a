"""The version root: atomic publish, pointer, rollback, refusals; and its CLI commands."""

from __future__ import annotations

import json
import os
import re
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embrecall.cli import main as service_main
from embrecall.errors import ArtifactError, InvalidArgumentError
from embrecall.versions import (
    ActivationRefusedError,
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
        "meta",
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


def test_history_written_by_older_embrecall_still_reads(root, artifacts):
    root.publish(artifacts["v2"], "v2")
    # the format before HISTORY named its state, as a crash between the writes left it
    legacy = {"previous": ["v1", "v2"], "log": []}
    (root.path / "HISTORY").write_text(json.dumps(legacy))
    assert root.history()["previous"] == ["v1"] and root.rollback_target() == "v1"
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


# -- verification before the pointer moves ---------------------------------------------------
def _pointer_and_history(root: VersionRoot) -> tuple[bytes, bytes]:
    return (root.path / "CURRENT").read_bytes(), (root.path / "HISTORY").read_bytes()


def test_rollback_to_a_corrupt_version_is_refused_and_nothing_moves(root, artifacts, capsys):
    root.publish(artifacts["v2"], "v2")
    corrupt(root.path / "versions" / "v1" / "items" / "vectors.npy")
    before = _pointer_and_history(root)
    assert service_main(["rollback", str(root.path), "--no-check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "rollback of v1 refused (CURRENT stays v2)" in err[0]
    assert "SHA-256" in err[0]
    assert service_main(["rollback", str(root.path), "--to", "v1", "--no-check"]) == 1
    assert "activation of v1 refused" in capsys.readouterr().err
    assert _pointer_and_history(root) == before


def test_activate_and_rollback_run_the_check_first(root, artifacts):
    root.publish(artifacts["v2"], "v2")
    before = _pointer_and_history(root)
    seen = []

    def refuse(path):
        seen.append(path.name)
        raise ArtifactError("canary says no")

    with pytest.raises(ActivationRefusedError, match="canary says no"):
        root.rollback(check=refuse)
    with pytest.raises(ActivationRefusedError, match="canary says no"):
        root.activate("v1", check=refuse)
    assert seen == ["v1", "v1"] and _pointer_and_history(root) == before
    assert root.rollback(check=seen.append) == "v1"


def test_rollback_runs_the_canary_with_the_floor_the_target_was_published_with(
    tmp_path, artifacts, capsys
):
    from .support import save_broken_index_version

    broken = save_broken_index_version(tmp_path, "broken", seed=3)
    root = tmp_path / "root"
    argv = ["publish", str(broken), str(root), "--id", "b1", "--canary-min-recall", "0"]
    assert service_main(argv) == 0
    vroot = VersionRoot(root)
    assert vroot.canary_floor("b1") == {"min_recall": 0.0, "queries": 20, "k": 10}
    assert service_main(["publish", str(artifacts["v1"]), str(root), "--id", "v1"]) == 0
    assert vroot.canary_floor("v1") == {"min_recall": 0.9, "queries": 20, "k": 10}
    before = _pointer_and_history(vroot)
    capsys.readouterr()
    # a flag overrides the recorded floor: the broken index is then refused
    assert service_main(["rollback", str(root), "--canary-min-recall", "0.9"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "rollback of b1 refused" in err[0] and "canary recall@10" in err[0]
    assert _pointer_and_history(vroot) == before
    assert service_main(["rollback", str(root), "--json"]) == 0  # its own floor, 0
    assert json.loads(capsys.readouterr().out)["current"] == "b1"
    argv = ["publish", str(broken), str(root), "--id", "b2", "--no-check", "--no-activate"]
    assert service_main(argv) == 0
    assert vroot.canary_floor("b2") is None
    # published unchecked: the default floor applies, and refuses it
    assert service_main(["rollback", str(root), "--to", "b2"]) == 1
    assert "activation of b2 refused" in capsys.readouterr().err
    assert service_main(["rollback", str(root), "--to", "b2", "--no-check"]) == 0


# -- crash points of a pointer move -----------------------------------------------------------
def _state(root: VersionRoot) -> dict[str, bytes | None]:
    return {
        name: (root.path / name).read_bytes() if (root.path / name).exists() else None
        for name in ("CURRENT", "HISTORY")
    }


def _put(root: VersionRoot, files: dict[str, bytes | None]) -> None:
    for name, data in files.items():
        if data is None:
            (root.path / name).unlink(missing_ok=True)
        else:
            (root.path / name).write_bytes(data)


@pytest.mark.parametrize(
    "move",
    ["first publish", "publish", "activate", "rollback", "rollback after activate"],
)
def test_versions_and_rollback_are_right_at_every_crash_point(tmp_path, artifacts, move, capsys):
    """HISTORY is written before CURRENT; a crash leaves neither, the first, or both written.
    Each state is made of the real files of the real move, and must read as the state that
    CURRENT names (the fourth mix, only CURRENT written, must not mislead either)."""
    root = VersionRoot(tmp_path / "root")
    for vid in ("v1", "v2", "v3"):
        root.publish(artifacts["v1"], vid, activate=False)
    if move != "first publish":
        root.activate("v1")
        root.activate("v2")
        root.activate("v3")
        if move == "rollback after activate":
            root.activate("v2")  # stack v1 v2 v3, current v2
    old = _state(root)
    expect_old = (root.current(), root.history()["previous"], root.rollback_target())
    if move == "first publish":
        root.activate("v1")
    elif move == "publish":
        root.publish(artifacts["v2"], "v4")
    elif move == "activate":
        root.activate("v1")
    else:
        root.rollback()
    new = _state(root)
    expect_new = (root.current(), root.history()["previous"], root.rollback_target())
    assert expect_new != expect_old
    crash_points = {
        "before both writes": ({**old}, expect_old),
        "between the writes": ({**new, "CURRENT": old["CURRENT"]}, expect_old),
        "after both writes": ({**new}, expect_new),
        "only the pointer": ({**old, "CURRENT": new["CURRENT"]}, expect_new),
    }
    for point, (files, (current, previous, target)) in crash_points.items():
        _put(root, files)
        assert root.current() == current, point
        assert root.history()["previous"] == previous, point
        assert root.rollback_target() == target, point
        assert service_main(["versions", str(root.path), "--json"]) == 0
        listing = json.loads(capsys.readouterr().out)
        assert (listing["current"], listing["rollback_to"]) == (current, target), point
        assert service_main(["versions", str(root.path)]) == 0
        text = capsys.readouterr().out
        assert (f"rollback goes to: {target}" in text) == (target is not None), point
        if target is not None:
            assert root.rollback() == target, point
            assert root.current() == target and root.rollback_target() != target, point


# -- leftovers, symlinks, --move --------------------------------------------------------------
def test_stale_staging_is_reported_then_removed_by_the_next_publish(root, artifacts, capsys):
    import shutil

    stale = root.path / ".staging-v2-abc123"
    shutil.copytree(artifacts["v2"], stale / "artifact")  # as a publish killed mid-copy left it
    (root.path / ".CURRENT.99999.tmp").write_text("v2\n")
    assert [p.name for p in root.leftovers()] == [".CURRENT.99999.tmp", ".staging-v2-abc123"]
    assert service_main(["versions", str(root.path)]) == 0
    assert "left by killed publishes" in capsys.readouterr().out
    root.publish(artifacts["v2"], "v2")
    assert root.leftovers() == [] and not stale.exists()
    assert not (root.path / ".CURRENT.99999.tmp").exists()


def test_a_source_taken_by_a_killed_move_is_put_back(tmp_path, root, artifacts):
    import shutil

    from embrecall.artifact import verify_artifact

    src = tmp_path / "src"
    staging = root.path / ".staging-v2-abc123"
    staging.mkdir()
    # the state a publish --move killed after its rename leaves: the marker, then the artifact
    (staging / "moved-from.json").write_text(json.dumps({"source": str(src)}))
    shutil.copytree(artifacts["v2"], staging / "artifact")
    assert service_main(["publish", str(src), str(root.path), "--id", "v2", "--move"]) == 0
    assert root.current() == "v2" and not src.exists() and not staging.exists()
    verify_artifact(root.path_of("v2"))


def test_move_across_file_systems_copies_then_deletes(tmp_path, artifacts):
    import shutil

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system at /dev/shm")
    src = Path(tempfile.mkdtemp(dir=shm)) / "art"
    try:
        shutil.copytree(artifacts["v1"], src)
        root = VersionRoot(tmp_path / "root")
        root.publish(src, "m1", move=True)
        assert not src.exists() and root.current() == "m1" and root.leftovers() == []
    finally:
        shutil.rmtree(src.parent, ignore_errors=True)


def test_symlinks_inside_an_artifact_are_refused(tmp_path, root, artifacts, capsys):
    import shutil

    from embrecall.artifact import load_artifact

    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("not for the root")
    art = tmp_path / "linked"
    shutil.copytree(artifacts["v2"], art)
    (art / "extra").symlink_to(secret)
    assert service_main(["publish", str(art), str(root.path), "--id", "v2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "extra is a symbolic link" in err[0]
    assert root.ids() == ["v1"] and not list(root.path.rglob("secret.txt"))
    with pytest.raises(ArtifactError, match="extra is a symbolic link"):
        load_artifact(art)
    # a listed file that is a link to an identical copy passes the checksums: refused too
    (art / "extra").unlink()
    ids = art / "items" / "ids.npy"
    shutil.copy(ids, secret / "ids.npy")
    ids.unlink()
    ids.symlink_to(secret / "ids.npy")
    with pytest.raises(ArtifactError, match="items/ids.npy is a symbolic link"):
        load_artifact(art, verify=False)
