"""The shipped graphical model "Rapid landslide mapping" (change_stack → predict → evaluate) runs like any
algorithm, also as the batch dialog runs it (one fresh instance per row)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

MODEL_ID = "landslide_mapper:rapid_landslide_mapping"  # stable, without spaces (DESIGN.md)


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    from landslide_mapper.core.simulate import simulate_event

    return simulate_event(tmp_path_factory.mktemp("model_event"), width=96, height=96, seed=5)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from support import constant_package

    return constant_package(tmp_path_factory.mktemp("model_pkg") / "flat.lmpkg", ["pre_VV", "post_VV", "dNDVI"],
                            logit=1.0)


def _row(event, package, folder: Path) -> dict:
    return {"PRE": [str(event.pre_s1), str(event.pre_s2)], "POST": [str(event.post_s1), str(event.post_s2)],
            "PRESET": "setting2", "PACKAGE": package, "TRUTH": str(event.labels_vector), "TRUTH_FIELD": "class",
            "stack:Change stack": str(folder / "stack.tif"),
            "predict:Landslide probability": str(folder / "probability.tif"),
            "predict:Landslide mask": str(folder / "mask.tif"),
            "predict:Landslide polygons": str(folder / "landslides.gpkg"),
            "evaluate:Confusion map": str(folder / "confusion.tif"),
            "evaluate:Metrics report": str(folder / "report.json")}


def test_model_is_in_the_provider_with_its_inputs_and_outputs(landslide_provider):
    from qgis.core import QgsApplication, QgsProcessingAlgorithm

    model = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    assert model is not None and model.group() == "Workflows"
    assert model.displayName() == "Rapid landslide mapping"
    assert model.parameterDefinition("PRESET").usesStaticStrings()
    assert {p.name() for p in model.parameterDefinitions() if not p.isDestination()} == {
        "PRE", "POST", "PRESET", "PACKAGE", "TRUTH", "TRUTH_FIELD"}
    assert {o.name() for o in model.outputDefinitions()} >= {"stack:Change stack", "predict:Landslide mask",
                                                            "evaluate:Confusion map", "evaluate:Metrics report"}
    assert model.flags() & QgsProcessingAlgorithm.FlagSupportsBatch
    assert "PRESET" in [p.name() for p in model.parameterDefinitions()]


def test_model_runs_the_chain_for_each_batch_row(landslide_provider, event, package, tmp_path):
    import processing
    from qgis.core import QgsApplication

    with rasterio.open(event.labels_raster) as src:
        truth = int((src.read(1) == 1).sum())
    for row in ("a", "b"):  # what the batch dialog does: a fresh instance and parameter set per row
        folder = tmp_path / row
        folder.mkdir()
        alg = QgsApplication.processingRegistry().createAlgorithmById(MODEL_ID)
        results = processing.run(alg, _row(event, package, folder))
        with rasterio.open(results["stack:Change stack"]) as src:
            assert src.descriptions == ("pre_VV", "post_VV", "dNDVI")
        with rasterio.open(results["evaluate:Confusion map"]) as src:
            codes = src.read(1)
        # The flat model (p = 0.73 ≥ 0.5) maps every valid pixel: nothing is missed, the rest are false alarms.
        assert int((codes == 3).sum()) == 0 and int((codes == 1).sum()) == truth
        report = json.loads(Path(results["evaluate:Metrics report"]).read_text())
        assert report["metrics"]["recall"] == pytest.approx(1.0)
        assert Path(results["predict:Landslide polygons"]).is_file()


def test_committed_model_matches_the_generator(repo_root):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, str(repo_root / "scripts" / "make_models.py"), "--check"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
