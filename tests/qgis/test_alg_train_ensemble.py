"""train_ensemble, pixel_baseline and package_info through processing.run, as a user's script would call them."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import rasterio


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    from support import export_learnable_chips

    return export_learnable_chips(tmp_path_factory.mktemp("ens"))


def test_train_ensemble_writes_package_and_leaderboard_and_package_info_describes_it(landslide_provider, chips,
                                                                                     tmp_path):
    folder, _ = chips
    out = run("train_ensemble", {"CHIPS": str(folder), "ARCHITECTURES": [0, 3], "LOSSES": [2],  # Unet, Linknet; dice
                                 "LEARNING_RATES": "0.003", "TOP_K": 2, "ENCODER": "tu-resnet10t", "EPOCHS": 1,
                                 "BATCH_SIZE": 4, "ITERATIONS": 2, "DECODER_WIDTH": 4,
                                 "OUTPUT": str(tmp_path / "ens.lmpkg")})
    assert Path(out["OUTPUT"]).exists() and 0 <= out["F1"] <= 1 and 0 < out["THRESHOLD"] < 1
    with open(out["LEADERBOARD"], newline="") as f:
        board = list(csv.DictReader(f))
    members, ensemble_row = board[:-1], board[-1]
    kept = sum(r["selected"] == "True" for r in members)  # the top 2, or the best alone if it validates better
    assert len(members) == 2 and kept in (1, 2) and ensemble_row["member"] == f"ENSEMBLE (top {kept})"
    assert float(members[0]["val_f1"]) >= float(members[1]["val_f1"])
    assert out["F1"] >= out["BEST_SINGLE_F1"] - 1e-4
    assert out["BEST_SINGLE_F1"] == pytest.approx(float(board[0]["val_f1"]), abs=1e-4)

    info = run("package_info", {"PACKAGE": out["OUTPUT"]})
    assert info["MEMBERS"] == kept and info["INPUT_BANDS"] == "pre_VV,post_VV,dNDVI"
    assert kept == 1 or "Ensemble: pixel-wise weighted mean of 2 members" in info["SUMMARY"]
    assert info["THRESHOLD"] == pytest.approx(out["THRESHOLD"])


def test_pixel_baseline_trains_and_maps_the_stack(landslide_provider, chips, tmp_path):
    folder, stack = chips
    out = run("pixel_baseline", {"CHIPS": str(folder), "MODEL": 1, "OUTPUT": str(tmp_path / "cart.lmpkg"),
                                 "INPUT": stack, "OUTPUT_MASK": str(tmp_path / "mask.tif")})
    assert out["F1"] > 0.8 and Path(out["OUTPUT"]).exists()
    with rasterio.open(out["OUTPUT_MASK"]) as m:
        assert set(m.read(1).ravel().tolist()) <= {0, 1, 255}
    info = run("package_info", {"PACKAGE": out["OUTPUT"]})
    assert "CART pixel classifier" in info["SUMMARY"]


def test_package_info_refuses_a_damaged_package(landslide_provider, tmp_path):
    from qgis.core import QgsProcessingException

    bad = tmp_path / "bad.lmpkg"
    bad.write_text("not a zip")
    with pytest.raises(QgsProcessingException, match="not a Landslide Mapper model package"):
        run("package_info", {"PACKAGE": str(bad)})
