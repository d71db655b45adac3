"""Every enum of every algorithm uses static strings (DESIGN.md): `ARCHITECTURE=Unet` works in processing.run,
batch files, models and qgis_process; the short key (`SAMPLING=grid`) and the index of earlier releases still work."""
from __future__ import annotations

import pytest

from landslide_mapper.processing_provider.algorithms import ALGORITHMS


def _enums():
    from qgis.core import QgsProcessingParameterEnum

    for cls in ALGORITHMS:
        alg = cls()
        alg.initAlgorithm()
        for p in alg.parameterDefinitions():
            if isinstance(p, QgsProcessingParameterEnum):
                yield alg, p


def test_every_enum_of_every_algorithm_uses_static_strings(qgis_app):
    enums = list(_enums())
    assert len(enums) >= 15
    for alg, p in enums:
        assert p.usesStaticStrings(), f"{alg.name()}:{p.name()}"
        # QGIS reads a static-string value with a comma as several values: options must not hold one
        assert not [o for o in p.options() if "," in o], f"{alg.name()}:{p.name()}"
        default = p.defaultValue()
        for d in default if isinstance(default, list) else [default]:
            assert d in p.options(), f"{alg.name()}:{p.name()} default {d!r}"


def test_enum_index_reads_name_key_and_old_index(qgis_app):
    from qgis.core import QgsProcessingContext

    from landslide_mapper.processing_provider.alg_export_chips import ExportChipsAlgorithm
    from landslide_mapper.processing_provider.alg_train_ensemble import TrainEnsembleAlgorithm

    context = QgsProcessingContext()
    alg = ExportChipsAlgorithm()
    alg.initAlgorithm()
    for value in ("positive", "Positive-biased random (share of chips with landslides)", 2, "2", "POSITIVE"):
        assert alg.enum_index({"SAMPLING": value}, "SAMPLING", context) == 2, value
    assert alg.enum_index({}, "SAMPLING", context) == 0  # the default
    ensemble = TrainEnsembleAlgorithm()
    ensemble.initAlgorithm()
    for value in (["Unet", "Linknet"], "Unet,Linknet", [0, 3], ["0", "Linknet"]):
        assert ensemble.enum_indexes({"ARCHITECTURES": value}, "ARCHITECTURES", context) == [0, 3], value


@pytest.mark.parametrize("value,ok", [("setting2", True), ("1", True), (1, True), ("custom", True),
                                      ("setting99", False), (42, False)])
def test_check_accepts_names_keys_and_old_indexes_only(qgis_app, tmp_path, value, ok):
    import numpy as np
    from qgis.core import QgsProcessingContext
    from support import write_raster

    from landslide_mapper.processing_provider.alg_change_stack import ChangeStackAlgorithm

    alg = ChangeStackAlgorithm()
    alg.initAlgorithm()
    raster = write_raster(tmp_path / "a.tif", np.ones((4, 4), np.float32), ["VV"])
    accepted, message = alg.checkParameterValues({"PRE": [raster], "POST": [raster], "PRESET": value,
                                                  "OUTPUT": "TEMPORARY_OUTPUT"}, QgsProcessingContext())
    assert accepted == ok, message
    if not ok:
        assert "PRESET" in message


def test_processing_run_with_names(landslide_provider, tmp_path):
    import numpy as np
    import processing
    from support import write_raster

    truth = np.zeros((16, 16), np.uint8)
    truth[2:6, 2:6] = 1
    path = write_raster(tmp_path / "t.tif", truth, ["label"])
    out = processing.run("landslide_mapper:evaluate", {"PREDICTION": path, "TRUTH": path, "PREDICTION_TYPE": "mask",
                                                        "CONNECTIVITY": "4 neighbours (edges only)",
                                                        "OUTPUT_REPORT": str(tmp_path / "r.json")})
    assert out["F1"] == pytest.approx(1.0)
