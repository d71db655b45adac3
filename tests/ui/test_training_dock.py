"""Training dock: chips + a tiny model as background tasks with a live curve, cancel, and one-click loading."""
from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import Qt

TINY = {"EPOCHS": 1, "BATCH_SIZE": 4, "ENCODER_DEPTH": 3, "DECODER_CHANNELS": "32,16,8"}


@pytest.fixture
def dock(qgis_iface, landslide_provider, project, isolated_settings, demo_scene, qtbot):
    from landslide_mapper.ui.training_dock import TrainingDock

    event, stack_path = demo_scene
    stack = QgsRasterLayer(stack_path, "stack")
    labels = QgsVectorLayer(f"{event.labels_vector}|layername=landslides", "inventory", "ogr")
    project.addMapLayers([stack, labels])
    widget = TrainingDock(qgis_iface)
    qtbot.addWidget(widget)
    widget.chip_panel.set_value("INPUT", stack.id())
    widget.chip_panel.set_value("LABELS", labels.id())
    widget.chip_panel.set_value("TILE_SIZE", 32)
    widget.chip_panel.set_value("STRIDE", 32)
    widget.chip_panel.set_value("VALIDATION_FRACTION", 0.25)
    widget.chip_more_panel.set_value("SPLIT_BLOCK", 64)
    main, more = widget.training_panels()
    for name, value in TINY.items():
        (main if name in main.names() else more).set_value(name, value)
    yield widget
    if widget.chain is not None and widget.chain.running:
        widget.cancel()


def test_chips_then_training_with_live_curve_and_one_click_loading(dock, qgis_iface, wait_for_chain, qtbot):
    from landslide_mapper.ui.model_dock import ModelDock

    assert dock.run()
    chain = wait_for_chain(dock.chain, timeout_ms=120000)
    assert chain.ok, chain.error
    assert [s.algorithm_id for s in chain.steps] == ["export_chips", "train"]
    chips = Path(chain.results["chips"]["OUTPUT_FOLDER"])
    assert (chips / "stats.json").is_file()
    assert chain.steps[1].parameters(chain.results)["ENCODER_DEPTH"] == 3  # the options set in the dock
    assert len(dock.curve.epochs) == 1 and 0.0 <= dock.curve.epochs[0]["val_f1"] <= 1.0
    assert dock.curve.epochs[0]["train_loss"] > 0
    assert Path(dock.package_path).is_file() and dock.package_path.endswith("model.lmpkg")
    assert dock.load_button.isEnabled() and "validation F1" in dock.status.text()

    model_dock = ModelDock(qgis_iface)
    qtbot.addWidget(model_dock)
    dock.loadRequested.connect(model_dock.load_package)
    qtbot.mouseClick(dock.load_button, Qt.LeftButton)
    assert model_dock.package_path == dock.package_path
    assert "pre_VV" in model_dock.card.toPlainText() and model_dock.bands.is_complete()


def test_cancel_training_writes_no_package(dock, wait_for_chain):
    assert dock.run()
    dock.cancel()
    chain = wait_for_chain(dock.chain)
    assert not chain.ok and chain.error == "Canceled."
    assert "train" not in chain.results
    assert not list(Path(dock.run_folder).rglob("*.lmpkg"))
    assert not dock.load_button.isEnabled() and dock.run_button.isEnabled()


def test_parse_epoch_reads_the_training_log_line():
    from landslide_mapper.ui.charts import parse_epoch

    row = parse_epoch("Epoch 3/30: loss 0.4123, val loss 0.5001, val F1 0.612 at threshold 0.45 (best), 2.0 s")
    assert row == {"epoch": 3, "epochs": 30, "train_loss": 0.4123, "val_loss": 0.5001, "val_f1": 0.612}
    assert parse_epoch("Training Unet/resnet18 on 12 chips") is None


def test_axis_limits_are_round_numbers():
    from landslide_mapper.ui.charts import nice_ceiling

    assert [nice_ceiling(v) for v in (0.93, 1.2, 3.1, 0.04, 0)] == [1.0, 2.0, 5.0, 0.05, 1.0]


def test_ensemble_choice_runs_train_ensemble_with_its_own_options(dock, tmp_path):
    index = dock.trainer_box.findData("train_ensemble")
    assert index >= 0, "the provider has no train_ensemble algorithm: the dock cannot offer ensembles"
    dock.trainer_box.setCurrentIndex(index)
    main, more = dock.training_panels()
    assert "TOP_K" in main.names() + more.names()
    assert main.isVisibleTo(dock) and not dock.panels["train"][0].isVisibleTo(dock)
    steps = dock.steps(tmp_path)
    assert [s.algorithm_id for s in steps] == ["export_chips", "train_ensemble"]
    params = steps[1].parameters({"chips": {"OUTPUT_FOLDER": "/chips"}})
    assert params["CHIPS"] == "/chips" and params["OUTPUT"].endswith("model.lmpkg")


def test_defaults_are_a_stack_and_polygons_never_a_confusion_map(qgis_iface, landslide_provider, project,
                                                                 isolated_settings, demo_scene, tmp_path, qtbot):
    """A confusion map (one band, integer codes) is neither a change stack nor landslide labels: nothing is
    preselected until a stack and a polygon layer are in the project, then those are."""
    import numpy as np
    from support import write_raster

    from landslide_mapper.ui.training_dock import TrainingDock

    event, stack_path = demo_scene
    confusion = QgsRasterLayer(write_raster(tmp_path / "confusion.tif", np.ones((8, 8), np.uint8), ["confusion"]),
                               "Confusion map")
    project.addMapLayer(confusion)
    dock = TrainingDock(qgis_iface)
    qtbot.addWidget(dock)
    values = dock.chip_panel.values()
    assert values.get("INPUT") in (None, "") and values.get("LABELS") in (None, "")
    stack = QgsRasterLayer(stack_path, "stack")
    labels = QgsVectorLayer(f"{event.labels_vector}|layername=landslides", "inventory", "ogr")
    project.addMapLayers([stack, labels])
    values = dock.chip_panel.values()
    assert values["INPUT"] in (stack.id(), stack.source()) and values["LABELS"] in (labels.id(), labels.source())
