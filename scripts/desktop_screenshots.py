"""Full-window screenshots of the QGIS desktop with the plugin's panels beside a styled landslide map.

Run by `make screenshots` inside a real QGIS (`qgis --code scripts/desktop_screenshots.py`, under Xvfb at
1920×1080, with a throw-away profile where the plugin is installed): it simulates a small storm event, trains a small
model in the training panel, maps the event in the mapping panel, checks the map in the evaluation panel, and grabs
the whole main window with each panel in front into docs/screenshots/desktop_<panel>.png. QGIS quits when done;
errors are written to <out>/desktop_screenshots.log and QGIS exits with status 1.

Environment: LANDSLIDE_MAPPER_SCREENSHOTS (output folder), LANDSLIDE_MAPPER_WORK (scratch folder),
LANDSLIDE_MAPPER_EPOCHS (default 8).
"""
from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

OUT = Path(os.environ.get("LANDSLIDE_MAPPER_SCREENSHOTS", "docs/screenshots"))
WORK = Path(os.environ.get("LANDSLIDE_MAPPER_WORK", "/tmp/landslide_mapper_desktop"))
EPOCHS = int(os.environ.get("LANDSLIDE_MAPPER_EPOCHS", "8"))
LOG = OUT / "desktop_screenshots.log"


def log(text: str) -> None:
    with LOG.open("a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%H:%M:%S')} {text}\n")


def settle(seconds: float = 1.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QgsApplication.processEvents()
        time.sleep(0.02)


def wait_for(chain, timeout: float = 1200.0) -> None:
    start = time.monotonic()
    while not chain.done:
        QgsApplication.processEvents()
        time.sleep(0.05)
        if time.monotonic() - start > timeout:
            raise TimeoutError("a panel's run took too long")
    if not chain.ok:
        raise RuntimeError(chain.error)


def grab(name: str) -> Path:
    settle(1.5)
    path = OUT / f"desktop_{name}.png"
    iface.mainWindow().grab().save(str(path))
    log(f"wrote {path}")
    return path


def run() -> None:
    from landslide_mapper.core.simulate import simulate_event
    from landslide_mapper.core.stack import build_change_stack
    from landslide_mapper.processing_provider.styles import apply_style
    from landslide_mapper.ui import common

    window = iface.mainWindow()
    window.showMaximized()
    window.resize(1920, 1080)
    OUT.mkdir(parents=True, exist_ok=True)
    QgsSettings().setValue(common.RUN_FOLDER, str(WORK / "runs"))
    plugin = plugins["landslide_mapper"]

    event = simulate_event(WORK / "event", width=384, height=384, seed=11, landslide_density=3.0)
    stack_path = build_change_stack([event.pre_s1, event.pre_s2], [event.post_s1, event.post_s2],
                                    WORK / "event" / "stack.tif", "setting2")
    project = QgsProject.instance()
    post = QgsRasterLayer(str(event.post_s2), "Post-event Sentinel-2")
    apply_style(post, "s2_composite")
    stack = QgsRasterLayer(str(stack_path), "Change stack (setting2)")
    inventory = QgsVectorLayer(f"{event.labels_vector}|layername=landslides", "Mapped landslides", "ogr")
    project.addMapLayers([post, stack, inventory])
    iface.mapCanvas().setExtent(post.extent())
    log("event simulated")

    training = plugin.show_dock("training")
    training.chip_panel.set_value("TILE_SIZE", 64)
    training.chip_panel.set_value("STRIDE", 32)
    training.chip_panel.set_value("VALIDATION_FRACTION", 0.25)
    training.chip_more_panel.set_value("SPLIT_BLOCK", 128)
    main_panel, more_panel = training.training_panels()
    for name, value in {"EPOCHS": EPOCHS, "BATCH_SIZE": 8, "LEARNING_RATE": 2e-3, "ENCODER_DEPTH": 3,
                        "DECODER_CHANNELS": "32,16,8", "PATIENCE": EPOCHS}.items():
        (main_panel if name in main_panel.names() else more_panel).set_value(name, value)
    training.package_file.setFilePath(str(WORK / "demo_model.lmpkg"))
    training.run()
    wait_for(training.chain)
    log("trained")

    model = plugin.load_in_model_dock(training.package_path) and plugin.docks["model"]
    evaluation = plugin.show_dock("evaluation")
    model.raise_()
    model.run()
    wait_for(model.chain)
    log("mapped")
    mask = next(layer for layer in model.last_layers if layer.name() == "Landslide mask")
    evaluation.prediction_box.setLayer(mask)
    evaluation.truth_box.setLayer(inventory)
    evaluation.run()
    wait_for(evaluation.chain)
    log("evaluated")

    # the map: confusion colours under the truth outlines, over the post-event image
    root = project.layerTreeRoot()
    for layer in model.last_layers:
        if layer.name() in ("Landslide probability", "Landslide mask"):
            node = root.findLayer(layer.id())
            if node is not None:
                node.setItemVisibilityChecked(False)
    root.findLayer(stack.id()).setItemVisibilityChecked(False)
    root.findLayer(inventory.id()).setItemVisibilityChecked(False)
    iface.mapCanvas().setExtent(post.extent())
    iface.mapCanvas().refreshAllLayers()
    evaluation.raise_()
    grab("evaluation")
    model.raise_()
    grab("model")
    training.raise_()
    grab("training")


def main() -> None:
    status = 0
    try:
        LOG.parent.mkdir(parents=True, exist_ok=True)
        LOG.write_text("")
        run()
    except Exception:  # noqa: BLE001 - written to the log, QGIS exits with 1
        log(traceback.format_exc())
        status = 1
    QgsApplication.instance().exit(status)


QTimer.singleShot(4000, main)
