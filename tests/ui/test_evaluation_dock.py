"""Evaluation dock: a map with known misses against polygon truth → the scores, legend and confusion map shown."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import QgsRasterLayer, QgsVectorLayer
from support import write_raster


@pytest.fixture
def dock(qgis_iface, landslide_provider, project, isolated_settings, qtbot):
    from landslide_mapper.ui.evaluation_dock import EvaluationDock

    widget = EvaluationDock(qgis_iface)
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def half_map(demo_scene, tmp_path):
    """The true landslides with every other column left out (misses) and a strip of false alarms at the top."""
    event, _ = demo_scene
    with rasterio.open(event.labels_raster) as src:
        truth = src.read(1)
        profile = dict(transform=src.transform, crs=src.crs)
    predicted = (truth == 1).astype(np.uint8)
    predicted[:, ::2] = 0
    predicted[:3][truth[:3] == 0] = 1
    path = write_raster(tmp_path / "half.tif", predicted, ["landslide"], crs=profile["crs"],
                        transform=profile["transform"], nodata=255)
    count = {"tp": ((truth == 1) & (predicted == 1)), "fp": ((truth == 0) & (predicted == 1)),
             "fn": ((truth == 1) & (predicted == 0))}
    return path, {k: int(v.sum()) for k, v in count.items()}


def test_evaluate_shows_scores_legend_and_adds_the_confusion_map(dock, project, demo_scene, half_map,
                                                                 wait_for_chain):
    event, _ = demo_scene
    path, n = half_map
    prediction = QgsRasterLayer(path, "half map")
    truth = QgsVectorLayer(f"{event.labels_vector}|layername=landslides", "inventory", "ogr")
    assert prediction.isValid() and truth.isValid() and min(n.values()) > 0
    project.addMapLayers([prediction, truth])
    dock.prediction_box.setLayer(prediction)
    dock.truth_box.setLayer(truth)
    assert dock.field_box.currentField() == "class"
    assert dock.run()
    chain = wait_for_chain(dock.chain)
    assert chain.ok, chain.error

    values = dock.table_values()
    precision, recall = n["tp"] / (n["tp"] + n["fp"]), n["tp"] / (n["tp"] + n["fn"])
    assert values["Precision"] == f"{precision:.3f}" and values["Recall"] == f"{recall:.3f}"
    assert values["F1 score"] == f"{2 * precision * recall / (precision + recall):.3f}"
    assert values["Intersection over union (IoU)"] == f"{n['tp'] / (n['tp'] + n['fp'] + n['fn']):.3f}"
    assert values["True positive pixels"] == f"{n['tp']:,}" and values["False negative pixels"] == f"{n['fn']:,}"
    assert list(values)[:2] == ["Precision", "Recall"]
    assert dock.diagram.points == [("half map", pytest.approx(precision), pytest.approx(recall))]

    group = project.layerTreeRoot().findGroup(dock.run_name)
    names = [node.layer().name() for node in group.findLayers()]
    assert names == ["Truth: inventory", "Confusion map"]
    confusion = group.findLayers()[1].layer()
    assert confusion.renderer().type() == "paletted"
    labels = dock.legend_labels()
    assert any(text.startswith("True positive") for text in labels)
    assert any(text.startswith("False negative") for text in labels)
    with rasterio.open(confusion.source()) as src:
        codes = src.read(1)
    assert [int((codes == c).sum()) for c in (1, 2, 3)] == [n["tp"], n["fp"], n["fn"]]
    assert "F1" in dock.status.text()


def test_second_map_adds_the_seven_colour_comparison(dock, project, demo_scene, half_map, wait_for_chain):
    event, _ = demo_scene
    path, n = half_map
    assert dock.can_compare, "the provider has no compare_predictions algorithm: the dock cannot compare maps"
    prediction = QgsRasterLayer(path, "half map")
    perfect = QgsRasterLayer(str(event.labels_raster), "perfect map")
    truth = QgsRasterLayer(str(event.labels_raster), "truth raster")
    project.addMapLayers([prediction, perfect, truth])
    dock.prediction_box.setLayer(prediction)
    dock.truth_box.setLayer(truth)
    dock.second_box.setLayer(perfect)
    assert dock.run()
    chain = wait_for_chain(dock.chain)
    assert chain.ok, chain.error
    assert [s.algorithm_id for s in chain.steps] == ["evaluate", "compare_predictions"]
    assert dock.table.horizontalHeaderItem(2).text() == "perfect map"
    assert dock.table_values(column=2)["Recall"] == "1.000"
    assert [p[0] for p in dock.diagram.points] == ["half map", "perfect map"]

    layers = {node.layer().name(): node.layer() for node in dock.last_group.findLayers()}
    comparison = layers["Comparison: A = half map, B = perfect map"]
    assert comparison.renderer().type() == "paletted" and len(comparison.renderer().classes()) == 7
    with rasterio.open(comparison.source()) as src:
        codes = src.read(1)
    # B is the truth itself: A's hits are shared (1), A's misses are B's alone (3), A's false alarms its own (6).
    assert [int((codes == c).sum()) for c in (1, 3, 6)] == [n["tp"], n["fn"], n["fp"]]
    assert not np.isin(codes, [2, 4, 5, 7]).any()
    assert any("Only B detects" in text for text in dock.legend_labels())
