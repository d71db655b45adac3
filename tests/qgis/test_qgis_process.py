"""The plugin as a headless user meets it: installed in a QGIS profile and driven by qgis_process.

Fixtures `qgis_process_profile` and `run_qgis_process(args, profile)` come from tests/conftest.py; add algorithm
runs like  run_qgis_process(["--json", "run", "landslide_mapper:evaluate", "--", "PREDICTION=…"], profile).
"""
from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

from landslide_mapper.processing_provider.algorithms import ALGORITHMS

pytestmark = pytest.mark.qgis_process
PROVIDER_ID = "landslide_mapper"


def _listed_providers(result) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)["providers"]


def _expected_ids() -> set[str]:
    from landslide_mapper.processing_provider.provider import shipped_models

    return {f"{PROVIDER_ID}:{cls().name()}" for cls in ALGORITHMS} | {f"{PROVIDER_ID}:{m.name()}"
                                                                       for m in shipped_models()}


def _load_zip_builder(repo_root: Path):
    spec = importlib.util.spec_from_file_location("build_zip", repo_root / "scripts" / "build_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_enabled_plugin_lists_provider_and_every_algorithm(qgis_process_profile, run_qgis_process):
    providers = _listed_providers(run_qgis_process(["--json", "list"], qgis_process_profile))
    assert PROVIDER_ID in providers, f"provider missing; got {sorted(providers)}"
    assert providers[PROVIDER_ID]["name"] == "Landslide Mapper"
    assert set(providers[PROVIDER_ID]["algorithms"]) == _expected_ids()


def test_plain_list_shows_provider_name(qgis_process_profile, run_qgis_process):
    result = run_qgis_process(["list"], qgis_process_profile)
    assert result.returncode == 0, result.stderr
    assert "Landslide Mapper" in result.stdout


def test_plugins_command_marks_plugin_as_enabled_provider(qgis_process_profile, run_qgis_process):
    result = run_qgis_process(["plugins"], qgis_process_profile)
    assert result.returncode == 0, result.stderr
    assert any(line.split() == ["*", PROVIDER_ID] for line in result.stdout.splitlines()), result.stdout


def test_provider_and_algorithms_listed_without_torch(qgis_process_profile, run_qgis_process):
    """A QGIS without PyTorch still lists every algorithm; torch is needed only when a deep-learning step runs."""
    providers = _listed_providers(run_qgis_process(["--json", "list"], qgis_process_profile, python_path=[]))
    assert PROVIDER_ID in providers
    assert set(providers[PROVIDER_ID]["algorithms"]) == _expected_ids()


def test_zip_holds_plugin_files_only(repo_root, tmp_path):
    builder = _load_zip_builder(repo_root)
    archive = builder.build_zip(tmp_path / "landslide_mapper.zip", repo_root)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert "landslide_mapper/metadata.txt" in names
    assert "landslide_mapper/__init__.py" in names
    assert "landslide_mapper/processing_provider/provider.py" in names
    assert "landslide_mapper/ui/icons/landslide_mapper.svg" in names
    assert all(n.startswith("landslide_mapper/") for n in names)
    top = {n.split("/")[1] for n in names}
    assert not top & {"tests", "scripts", ".venv", ".build", ".ci", ".git", "Makefile", "requirements.txt",
                      "pytest.ini", ".gitignore", "demo_out", "bench_out"}, top
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_unzipped_plugin_enables_and_lists_in_fresh_profile(repo_root, tmp_path, run_qgis_process):
    builder = _load_zip_builder(repo_root)
    archive = builder.build_zip(tmp_path / "landslide_mapper.zip", repo_root)
    profile = tmp_path / "qgis"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(plugins)  # what QGIS's "Install from ZIP" does

    enabled = run_qgis_process(["plugins", "enable", PROVIDER_ID], profile)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    assert "[PythonPlugins]" in (profile / "profiles" / "default" / "QGIS" / "QGIS3.ini").read_text()
    providers = _listed_providers(run_qgis_process(["--json", "list"], profile))
    assert set(providers[PROVIDER_ID]["algorithms"]) == _expected_ids()


def test_qgis_process_runs_evaluate_with_known_scores(qgis_process_profile, run_qgis_process, tmp_path):
    """`qgis_process run landslide_mapper:evaluate`, as a headless script would call it, with a known answer."""
    import numpy as np
    import rasterio
    from support import write_raster

    truth = np.zeros((40, 50), np.uint8)
    truth[5:15, 5:25] = 1  # 200 landslide pixels
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 5:15] = 1  # 100 TP, 100 FN
    mask[30:35, 30:40] = 1  # 50 FP
    pred = write_raster(tmp_path / "mask.tif", mask, ["landslide"])
    truth_path = write_raster(tmp_path / "truth.tif", truth, ["label"])
    result = run_qgis_process(["--json", "run", f"{PROVIDER_ID}:evaluate", "--", f"PREDICTION={pred}",
                               f"TRUTH={truth_path}", f"OUTPUT_CONFUSION={tmp_path / 'confusion.tif'}",
                               f"OUTPUT_REPORT={tmp_path / 'report.json'}"], qgis_process_profile)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = json.loads(result.stdout)["results"]
    assert outputs["F1"] == pytest.approx(2 * 100 / (2 * 100 + 50 + 100))
    assert outputs["PRECISION"] == pytest.approx(100 / 150) and outputs["RECALL"] == pytest.approx(0.5)
    with rasterio.open(tmp_path / "confusion.tif") as src:
        codes = src.read(1)
    assert (codes[5:15, 5:15] == 1).all() and (codes[30:35, 30:40] == 2).all() and (codes[5:15, 15:25] == 3).all()


@pytest.mark.parametrize("prediction_type,connectivity", [("mask", "4"), ("Mask (> 0 = landslide)", "8"), ("1", "0")])
def test_qgis_process_takes_enums_by_name_key_or_old_index(qgis_process_profile, run_qgis_process, tmp_path,
                                                           prediction_type, connectivity):
    """`PREDICTION_TYPE=mask` (key), the option text itself, and the index of earlier releases all run."""
    import numpy as np
    from support import write_raster

    truth = np.zeros((20, 20), np.uint8)
    truth[2:8, 2:8] = 1
    pred = write_raster(tmp_path / "mask.tif", truth, ["landslide"])
    truth_path = write_raster(tmp_path / "truth.tif", truth, ["label"])
    result = run_qgis_process(["--json", "run", f"{PROVIDER_ID}:evaluate", "--", f"PREDICTION={pred}",
                               f"TRUTH={truth_path}", f"PREDICTION_TYPE={prediction_type}",
                               f"CONNECTIVITY={connectivity}", f"OUTPUT_REPORT={tmp_path / 'report.json'}"],
                              qgis_process_profile)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["results"]["F1"] == pytest.approx(1.0)


def test_qgis_process_refuses_an_unknown_enum_name(qgis_process_profile, run_qgis_process, tmp_path):
    import numpy as np
    from support import write_raster

    pred = write_raster(tmp_path / "mask.tif", np.ones((8, 8), np.uint8), ["landslide"])
    result = run_qgis_process(["run", f"{PROVIDER_ID}:evaluate", "--", f"PREDICTION={pred}", f"TRUTH={pred}",
                               "PREDICTION_TYPE=banana"], qgis_process_profile)
    assert result.returncode != 0 and "PREDICTION_TYPE" in result.stdout + result.stderr
