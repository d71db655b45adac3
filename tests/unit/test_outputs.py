"""Outputs never cost the user data: folders are never replaced, runs appear whole or not at all, signals clean up."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from landslide_mapper.common.errors import InputError
from landslide_mapper.common.outputs import (
    FolderKind,
    atomic_output,
    check_run_paths,
    output_run,
    sweep_stale_temporaries,
)

KIND = FolderKind("test export", "marker.json", frozenset({"marker.json", "data.txt"}))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if "lmtmp" in p.name or "lmbak" in p.name)


def test_a_file_output_never_replaces_a_folder(tmp_path):
    folder = tmp_path / "Documents"
    folder.mkdir()
    (folder / "thesis.docx").write_text("precious")
    with pytest.raises(InputError, match=r"'.*Documents' is a folder; give the name of a file inside it"):
        with atomic_output(folder) as tmp:
            tmp.write_text("new")
    assert (folder / "thesis.docx").read_text() == "precious"
    assert leftovers(tmp_path) == []


def test_a_folder_output_replaces_only_an_empty_folder_or_an_earlier_one_of_its_kind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty; choose a new or empty folder or an earlier test export"):
        with atomic_output(out, is_dir=True, kind=KIND) as tmp:
            (tmp / "marker.json").write_text("{}")
    assert (out / "notes.txt").read_text() == "mine"

    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_output(empty, is_dir=True, kind=KIND) as tmp:
        (tmp / "marker.json").write_text("1")
    with atomic_output(empty, is_dir=True, kind=KIND) as tmp:  # an earlier export of the same kind: replaced
        (tmp / "marker.json").write_text("2")
    assert (empty / "marker.json").read_text() == "2"

    (empty / "thesis.docx").write_text("precious")  # the user put a file into it: no longer ours alone
    with pytest.raises(InputError, match="is not empty"):
        with atomic_output(empty, is_dir=True, kind=KIND) as tmp:
            (tmp / "marker.json").write_text("3")
    assert (empty / "thesis.docx").read_text() == "precious" and (empty / "marker.json").read_text() == "2"
    assert leftovers(tmp_path) == []


def test_a_failed_run_removes_its_outputs_and_restores_what_they_replaced(tmp_path):
    old = tmp_path / "probability.tif"
    old.write_bytes(b"old probability")
    Path(str(old) + ".aux.xml").write_text("old statistics")
    fresh = tmp_path / "mask.tif"
    with pytest.raises(RuntimeError, match="polygons failed"):
        with output_run():
            with atomic_output(old) as tmp:
                tmp.write_bytes(b"new probability")
            with atomic_output(fresh) as tmp:
                tmp.write_bytes(b"new mask")
            assert old.read_bytes() == b"new probability" and fresh.exists()  # later steps may read them
            raise RuntimeError("polygons failed")
    assert old.read_bytes() == b"old probability"
    assert Path(str(old) + ".aux.xml").read_text() == "old statistics"
    assert not fresh.exists()
    assert leftovers(tmp_path) == []


def test_a_successful_run_replaces_files_and_leaves_no_backup(tmp_path):
    old = tmp_path / "stack.tif"
    old.write_bytes(b"old")
    Path(str(old) + ".aux.xml").write_text("stale statistics of the old data")
    with output_run():
        with atomic_output(old) as tmp:
            tmp.write_bytes(b"new")
    assert old.read_bytes() == b"new"
    assert not Path(str(old) + ".aux.xml").exists()
    assert leftovers(tmp_path) == []


def test_a_shapefile_moves_with_all_its_parts(tmp_path):
    target = tmp_path / "polygons.shp"
    with atomic_output(target) as tmp:
        for ext in (".shp", ".shx", ".dbf", ".prj"):
            tmp.with_suffix(ext).write_text(ext)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["polygons.dbf", "polygons.prj", "polygons.shp",
                                                          "polygons.shx"]
    assert (tmp_path / "polygons.dbf").read_text() == ".dbf"


def test_stale_temporaries_of_a_dead_process_are_swept_and_others_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".stack.{dead_pid}.0123abcd.lmtmp.tif"
    stale.write_bytes(b"half")
    live = tmp_path / f".stack.{os.getppid()}.89abcdef.lmtmp.tif"  # another run still writing
    live.write_bytes(b"busy")
    decoy = tmp_path / ".stack.notes.tif"
    decoy.write_text("mine")
    other = tmp_path / f".other.{dead_pid}.0123abcd.lmtmp.tif"
    other.write_text("another output's")
    with atomic_output(tmp_path / "stack.tif") as tmp:
        tmp.write_bytes(b"stack")
    assert not stale.exists() and live.exists() and decoy.exists() and other.exists()
    assert sweep_stale_temporaries(tmp_path / "other.tif") == [other]


def test_outputs_that_are_inputs_or_each_other_are_refused_by_the_file_itself(tmp_path):
    data = tmp_path / "pre.tif"
    data.write_bytes(b"input")
    (tmp_path / "link.tif").symlink_to(data)
    os.link(data, tmp_path / "hard.tif")
    for name in ("pre.tif", "link.tif", "hard.tif", "missing/../pre.tif"):
        with pytest.raises(InputError, match=r"OUTPUT '.*' is the same file as the input PRE"):
            check_run_paths([("PRE", str(data))], [("OUTPUT", str(tmp_path / name), False, None)])
    with pytest.raises(InputError, match="outputs OUTPUT_PROBABILITY and OUTPUT_MASK are the same file"):
        check_run_paths([], [("OUTPUT_PROBABILITY", str(tmp_path / "p.tif"), False, None),
                             ("OUTPUT_MASK", str(tmp_path / "sub/../p.tif"), False, None)])
    check_run_paths([("PRE", str(data))], [("OUTPUT", str(tmp_path / "stack.tif"), False, None)])
    assert data.read_bytes() == b"input"


def test_an_unwritable_output_folder_is_refused_before_work(tmp_path):
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_run_paths([], [("OUTPUT", str(tmp_path / "a_file" / "stack.tif"), False, None)])
    assert (tmp_path / "a_file").read_text() == "mine"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root without capabilities dropped)")
        with pytest.raises(InputError, match="not writable for this user"):
            check_run_paths([], [("OUTPUT", str(locked / "stack.tif"), False, None)])
    finally:
        locked.chmod(0o700)


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from landslide_mapper.common.outputs import atomic_output, output_run
    folder = Path(sys.argv[1])
    with output_run():
        with atomic_output(folder / "probability.tif") as tmp:
            tmp.write_bytes(b"new probability")
        with atomic_output(folder / "mask.tif") as tmp:
            tmp.write_bytes(b"half a mask")
            print("writing", flush=True)
            time.sleep(60)
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_run_leaves_nothing_and_restores_what_it_replaced(tmp_path, signum):
    old = tmp_path / "probability.tif"
    old.write_bytes(b"old probability")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / ".build" / "import"))
    child = subprocess.Popen([sys.executable, "-P", "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        assert child.stdout.readline().strip() == "writing"
        assert any("lmtmp" in p.name for p in tmp_path.iterdir())
        child.send_signal(signum)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert child.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probability.tif"]
    assert old.read_bytes() == b"old probability"


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    from rasterio.transform import from_origin
    from landslide_mapper.core import raster
    from landslide_mapper.common.errors import InputError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    try:
        with raster.create_raster(sys.argv[1], width=1024, height=1024, crs="EPSG:32632", dtype="float32",
                                  transform=from_origin(0, 0, 10, 10), descriptions=["p"], cog=sys.argv[2] == "1") as dst:
            dst.write(np.random.default_rng(0).random((1, 1024, 1024), dtype=np.float32))
    except InputError as exc:
        print("REFUSED", exc)
    else:
        print("WRITTEN")
""")


@pytest.mark.parametrize("cog", [False, True])
def test_a_write_that_does_not_reach_the_disk_is_a_failure_that_leaves_nothing(tmp_path, cog):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / ".build" / "import"))
    out = tmp_path / "probability.tif"
    out.write_bytes(b"the previous map")
    result = subprocess.run([sys.executable, "-P", "-c", FULL_DISK, str(out), "1" if cog else "0"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert "REFUSED" in result.stdout, result.stdout + result.stderr
    assert "nothing was written" in result.stdout and "probability.tif" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probability.tif"]
    assert out.read_bytes() == b"the previous map"


def test_a_side_file_that_is_not_from_an_earlier_run_is_refused(tmp_path):
    report = tmp_path / "report.json"
    (tmp_path / "report.html").write_text("my own notes")
    with pytest.raises(InputError, match=r"'.*report.html' already exists beside the output OUTPUT_REPORT"):
        check_run_paths([], [("OUTPUT_REPORT", str(report), False, None)],
                        [("OUTPUT_REPORT", str(report), str(tmp_path / "report.html"))])
    report.write_text("{}")  # an earlier report of ours: its side files are ours to replace
    check_run_paths([], [("OUTPUT_REPORT", str(report), False, None)],
                    [("OUTPUT_REPORT", str(report), str(tmp_path / "report.html"))])
    assert (tmp_path / "report.html").read_text() == "my own notes"


def test_an_output_may_not_replace_a_file_inside_an_input_folder(tmp_path):
    chips = tmp_path / "chips"
    chips.mkdir()
    (chips / "stats.json").write_text("{}")
    with pytest.raises(InputError, match="would replace a file inside the input folder CHIPS"):
        check_run_paths([("CHIPS", str(chips))], [("OUTPUT", str(chips / "stats.json"), False, None)])
    check_run_paths([("CHIPS", str(chips))], [("OUTPUT", str(chips / "model.lmpkg"), False, None)])  # a new file


def test_a_folder_output_may_not_replace_a_folder_that_holds_an_input(tmp_path):
    earlier = tmp_path / "export"
    earlier.mkdir()
    (earlier / "marker.json").write_text("{}")
    (earlier / "data.txt").write_text("labels the user points at")
    with pytest.raises(InputError, match="holds the input LABELS"):
        check_run_paths([("LABELS", str(earlier / "data.txt"))], [("OUTPUT_FOLDER", str(earlier), True, KIND)])


def test_an_earlier_folder_with_a_file_of_the_users_anywhere_inside_is_not_replaced(tmp_path):
    kind = FolderKind("test export", "marker.json", frozenset({"marker.json", "images", "images/*.tif"}))
    earlier = tmp_path / "export"
    (earlier / "images").mkdir(parents=True)
    (earlier / "marker.json").write_text("{}")
    (earlier / "images" / "0001.tif").write_bytes(b"chip")
    assert kind.holds_only_ours(earlier)
    (earlier / "images" / "my_notes.txt").write_text("mine")
    assert not kind.holds_only_ours(earlier)
    with pytest.raises(InputError, match="is not empty"):
        with atomic_output(earlier, is_dir=True, kind=kind) as tmp:
            (tmp / "marker.json").write_text("new")
    assert (earlier / "images" / "my_notes.txt").read_text() == "mine"


def test_a_failed_write_names_the_users_file_not_the_temporary(tmp_path):
    import errno

    target = tmp_path / "stack.tif"
    with pytest.raises(InputError) as caught:
        with atomic_output(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert "Not enough space" in str(caught.value) and f"'{target}'" in str(caught.value)
    assert "lmtmp" not in str(caught.value) and leftovers(tmp_path) == []


def test_a_full_disk_without_a_file_name_is_blamed_on_the_output_being_written(tmp_path):
    import errno

    target = tmp_path / "report.json"
    with pytest.raises(InputError, match=rf"Not enough space .* to write '{target}'"):
        with atomic_output(target):
            raise OSError(errno.ENOSPC, "No space left on device")  # e.g. a library that drops the name
    assert leftovers(tmp_path) == []


def test_a_failed_run_removes_the_folders_it_made_for_its_outputs(tmp_path):
    with pytest.raises(RuntimeError):
        with output_run():
            with atomic_output(tmp_path / "new" / "deeper" / "stack.tif") as tmp:
                tmp.write_bytes(b"stack")
            raise RuntimeError("a later step failed")
    assert list(tmp_path.iterdir()) == []
