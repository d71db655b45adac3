"""export_chips in ArcGIS Classified Tiles format and train on such folders, through processing.run."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "arcgis_classified_tiles_s2"
TINY = {"EPOCHS": 1, "BATCH_SIZE": 2, "ITERATIONS": 2, "ENCODER_DEPTH": 3, "DECODER_CHANNELS": "32,16,8"}


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def _manifest(package):
    with zipfile.ZipFile(package) as zf:
        return json.loads(zf.read("model.json"))


def test_export_classified_tiles_with_positive_sampling_then_train_on_them(landslide_provider, tmp_path):
    from support import learnable_scene

    stack, labels = learnable_scene(tmp_path, height=128, width=160)
    out = run("export_chips", {"INPUT": stack, "LABELS": labels, "TILE_SIZE": 32, "SAMPLING": 2, "N_CHIPS": 24,
                               "POSITIVE_FRACTION": 0.75, "SPLIT_BLOCK": 64, "VALIDATION_FRACTION": 0.25,
                               "FORMAT": 1, "OUTPUT_FOLDER": str(tmp_path / "tiles")})
    folder = Path(out["OUTPUT_FOLDER"])
    assert out["TRAIN_CHIPS"] + out["VALIDATION_CHIPS"] == 24 and out["VALIDATION_CHIPS"] > 0
    for name in ("esri_model_definition.emd", "esri_accumulated_stats.json", "map.txt", "stats.txt"):
        assert (folder / name).exists(), name
    assert Path(out["PREVIEW_PNG"]).exists()
    trained = run("train", {"CHIPS": str(folder), **TINY, "OUTPUT": str(tmp_path / "m.lmpkg")})
    manifest = _manifest(trained["OUTPUT"])
    assert manifest["input_bands"] == ["pre_VV", "post_VV", "dNDVI"]
    stats = {s["name"]: s for s in json.loads((folder / "stats.json").read_text())["bands"]}
    assert manifest["normalization"]["dNDVI"]["mean"] == pytest.approx(stats["dNDVI"]["mean"])


@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real ArcGIS export not present at {REAL}")
def test_train_takes_a_real_arcgis_pro_export_with_a_class_mapping(landslide_provider, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="say which are landslides"):
        run("train", {"CHIPS": str(REAL), **TINY, "OUTPUT": str(tmp_path / "x.lmpkg")})
    trained = run("train", {"CHIPS": str(REAL), "LANDSLIDE_CLASSES": "2", **TINY,
                            "OUTPUT": str(tmp_path / "real.lmpkg")})
    manifest = _manifest(trained["OUTPUT"])
    assert manifest["input_bands"] == ["B1", "B2", "B3", "B4"]
    assert 208 <= manifest["normalization"]["B1"]["min"] and manifest["normalization"]["B1"]["mean"] > 500
    assert 0 <= trained["F1"] <= 1 and not (tmp_path / "x.lmpkg").exists()
