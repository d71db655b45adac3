"""The user's files are safe with every algorithm: outputs never replace folders, inputs or each other, a failed
write is a failure, and a killed run leaves nothing behind (through processing.run and qgis_process.bin)."""
from __future__ import annotations

import hashlib
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from support import constant_package, write_raster

BANDS = ["pre_VV", "post_VV", "dNDVI"]


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def digest(folder: Path) -> dict[str, str]:
    """Every file below `folder` with its hash: what must be unchanged after a refused run."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".aux.xml")}


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if "lmtmp" in p.name or "lmbak" in p.name]


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(1)
    s1 = write_raster(tmp_path / "s1.tif", (rng.random((2, 64, 64)) - 8).astype(np.float32), ["VV", "VH"])
    s2 = write_raster(tmp_path / "s2.tif", (rng.random((4, 64, 64)) * 1000 + 500).astype(np.uint16),
                      ["B02", "B03", "B04", "B08"])
    stack = write_raster(tmp_path / "stack.tif", rng.random((3, 64, 64)).astype(np.float32), BANDS)
    package = constant_package(tmp_path / "m.lmpkg", BANDS, tile_size=64)
    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "thesis.docx").write_text("three years of work")
    return tmp_path, Path(s1), Path(s2), Path(stack), Path(package), documents


def predict_params(package, stack, folder, **outputs):
    params = {"PACKAGE": str(package), "INPUT": str(stack), "OUTPUT_PROBABILITY": str(folder / "p.tif"),
              "OUTPUT_MASK": str(folder / "m.tif")}
    params.update({k: str(v) for k, v in outputs.items()})
    return params


def test_a_file_output_that_names_a_folder_is_refused_and_the_folder_survives(landslide_provider, scene):
    from qgis.core import QgsProcessingException

    tmp, s1, s2, stack, package, documents = scene
    before = digest(tmp)
    cases = [
        ("change_stack", {"PRE": [str(s1), str(s2)], "POST": [str(s1), str(s2)], "PRESET": 1,
                          "OUTPUT": str(documents)}, "OUTPUT"),
        ("predict", predict_params(package, stack, tmp, OUTPUT_PROBABILITY=documents), "OUTPUT_PROBABILITY"),
        ("predict", predict_params(package, stack, tmp, OUTPUT_POLYGONS=documents), "OUTPUT_POLYGONS"),
        ("evaluate", {"PREDICTION": str(stack), "TRUTH": str(stack), "OUTPUT_REPORT": str(documents)},
         "OUTPUT_REPORT"),
    ]
    for alg, params, parameter in cases:
        with pytest.raises(QgsProcessingException, match=rf"output {parameter} '.*Documents' is a folder"):
            run(alg, params)
    assert digest(tmp) == before
    assert (documents / "thesis.docx").read_text() == "three years of work"
    assert no_temporaries(tmp)


def test_an_output_that_is_an_input_is_refused_however_it_is_spelled(landslide_provider, scene):
    from qgis.core import QgsProcessingException

    tmp, s1, s2, stack, package, _ = scene
    (tmp / "alias.tif").symlink_to(stack)
    before = digest(tmp)
    spellings = [stack, tmp / "alias.tif", tmp / "not_yet" / ".." / "stack.tif"]
    for spelled in spellings:
        with pytest.raises(QgsProcessingException, match="is the same file as the input INPUT"):
            run("predict", predict_params(package, stack, tmp, OUTPUT_PROBABILITY=spelled))
    with pytest.raises(QgsProcessingException, match="OUTPUT '.*s1.tif' is the same file as the input PRE"):
        run("change_stack", {"PRE": [str(s1), str(s2)], "POST": [str(s1), str(s2)], "PRESET": 1,
                             "OUTPUT": str(s1)})
    with pytest.raises(QgsProcessingException, match="OUTPUT_CONFUSION .* same file as the input PREDICTION"):
        run("evaluate", {"PREDICTION": str(stack), "TRUTH": str(s1), "OUTPUT_CONFUSION": str(stack)})
    assert digest(tmp) == before
    assert not (tmp / "not_yet").exists() and no_temporaries(tmp)


def test_two_outputs_with_one_path_are_refused(landslide_provider, scene):
    from qgis.core import QgsProcessingException

    tmp, _, _, stack, package, _ = scene
    with pytest.raises(QgsProcessingException, match="outputs OUTPUT_PROBABILITY and OUTPUT_MASK are the same file"):
        run("predict", predict_params(package, stack, tmp, OUTPUT_MASK=tmp / "p.tif"))
    assert not (tmp / "p.tif").exists() and no_temporaries(tmp)


def test_folder_outputs_refuse_a_folder_with_the_users_files(landslide_provider, scene):
    from qgis.core import QgsProcessingException

    tmp, _, _, stack, _, documents = scene
    before = digest(documents)
    with pytest.raises(QgsProcessingException, match="OUTPUT_FOLDER folder '.*Documents' is not empty"):
        run("simulate_event", {"WIDTH": 64, "HEIGHT": 64, "OUTPUT_FOLDER": str(documents)})
    with pytest.raises(QgsProcessingException, match="OUTPUT_FOLDER folder '.*Documents' is not empty"):
        run("export_chips", {"INPUT": str(stack), "LABELS": str(stack), "TILE_SIZE": 32,
                             "OUTPUT_FOLDER": str(documents)})
    assert digest(documents) == before and no_temporaries(tmp)


def test_an_earlier_output_of_the_same_kind_is_replaced_as_a_file_would_be(landslide_provider, scene):
    tmp, s1, s2, *_ = scene
    first = run("simulate_event", {"WIDTH": 64, "HEIGHT": 64, "SEED": 1, "OUTPUT_FOLDER": str(tmp / "event")})
    dem_1 = Path(first["DEM"]).read_bytes()
    run("simulate_event", {"WIDTH": 64, "HEIGHT": 64, "SEED": 2, "OUTPUT_FOLDER": str(tmp / "event")})
    assert Path(first["DEM"]).read_bytes() != dem_1
    params = {"PRE": [str(s1), str(s2)], "POST": [str(s1), str(s2)], "PRESET": 1, "OUTPUT": str(tmp / "c.tif")}
    run("change_stack", params)
    run("change_stack", params)  # replacing an existing file of the same kind stays allowed, as in QGIS
    assert (tmp / "c.tif").exists() and no_temporaries(tmp)


def test_stale_temporaries_of_a_killed_run_are_swept_when_the_output_is_written_again(landslide_provider, scene):
    tmp, s1, s2, *_ = scene
    ended = subprocess.Popen(["true"])  # noqa: S603,S607 - a process that has ended: like a killed run's
    ended.wait()
    dead_pid = ended.pid
    stale = tmp / f".c.{dead_pid}.0123abcd.lmtmp.tif"
    stale.write_bytes(b"half a stack")
    keep = tmp / ".c.tif.notes"
    keep.write_text("not ours")
    run("change_stack", {"PRE": [str(s1), str(s2)], "POST": [str(s1), str(s2)], "PRESET": 1,
                         "OUTPUT": str(tmp / "c.tif")})
    assert not stale.exists() and keep.exists()


# -- qgis_process: a killed run and a full disk, as a headless user meets them --------------------------------

@pytest.mark.qgis_process
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_qgis_process_killed_mid_run_leaves_nothing(qgis_process_profile, start_qgis_process, tmp_path, signum):
    out = tmp_path / "event"
    proc = start_qgis_process(["run", "landslide_mapper:simulate_event", "--", "WIDTH=2500", "HEIGHT=2500",
                          f"OUTPUT_FOLDER={out}"], qgis_process_profile)
    try:
        deadline = time.time() + 120
        while not [p for p in tmp_path.rglob("*") if "lmtmp" in p.name] and time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        time.sleep(1.0)  # well inside the writing
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == [], [p.name for p in tmp_path.rglob("*")]


@pytest.mark.qgis_process
def test_qgis_process_on_a_full_disk_fails_clearly_and_keeps_the_previous_output(qgis_process_profile,
                                                                                 start_qgis_process, scene):
    tmp, s1, s2, *_ = scene
    out = tmp / "c.tif"
    out.write_bytes(b"last week's stack")
    big = write_raster(tmp / "big.tif", np.random.default_rng(0).random((2, 700, 700)).astype(np.float32) - 8,
                       ["VV", "VH"])
    big2 = write_raster(tmp / "big2.tif", (np.random.default_rng(1).random((4, 700, 700)) * 3000).astype(np.uint16),
                        ["B02", "B03", "B04", "B08"])

    def small_disk():  # writes past 300 kB fail as on a full disk (EFBIG instead of ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    proc = start_qgis_process(["run", "landslide_mapper:change_stack", "--", f"PRE={big}", f"PRE={big2}",
                          f"POST={big}", f"POST={big2}", "PRESET=1", f"OUTPUT={out}"], qgis_process_profile,
                         preexec_fn=small_disk)
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, text
    assert "nothing was written" in text and "c.tif" in text, text
    assert "Traceback" not in text, text
    assert out.read_bytes() == b"last week's stack"
    assert no_temporaries(tmp)


def test_files_written_beside_an_output_never_replace_the_users_own(landslide_provider, scene):
    from qgis.core import QgsProcessingException

    tmp, s1, _, stack, *_ = scene
    (tmp / "report.html").write_text("my own notes")
    with pytest.raises(QgsProcessingException, match="'.*report.html' already exists beside the output OUTPUT_REPORT"):
        run("evaluate", {"PREDICTION": str(stack), "TRUTH": str(s1), "OUTPUT_REPORT": str(tmp / "report.json")})
    assert (tmp / "report.html").read_text() == "my own notes" and not (tmp / "report.json").exists()


def test_an_output_inside_an_input_folder_may_not_replace_its_files(landslide_provider, tmp_path):
    from qgis.core import QgsProcessingException

    chips = tmp_path / "chips"
    chips.mkdir()
    (chips / "stats.json").write_text('{"bands": []}')
    with pytest.raises(QgsProcessingException, match="would replace a file inside the input folder CHIPS"):
        run("train", {"CHIPS": str(chips), "OUTPUT": str(chips / "stats.json")})
    assert (chips / "stats.json").read_text() == '{"bands": []}'
