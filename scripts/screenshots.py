"""Render the plugin's docks with demo content into docs/screenshots/*.png (used by the README).

Runs a real QGIS GUI application (under Xvfb: `make screenshots`) with a throw-away QGIS profile, simulates a small
storm event, and drives the docks as a user would: the training dock exports chips and trains a small model, the
model dock maps landslides with it, the evaluation dock checks the map against the simulated truth. Each dock, the
Doctor and the resulting map are then grabbed into PNG files.

    xvfb-run -a .venv/bin/python scripts/screenshots.py --out docs/screenshots     # or: make screenshots
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 440  # px: a dock as wide as QGIS usually gives it


class DemoIface:
    """The few QgisInterface calls the docks make, backed by a real main window and map canvas."""

    def __init__(self, window, canvas):
        self._window, self._canvas = window, canvas

    def mainWindow(self):  # noqa: N802 (QGIS API)
        return self._window

    def mapCanvas(self):  # noqa: N802
        return self._canvas


def wait_for(app, chain, timeout: float = 600.0) -> None:
    start = time.monotonic()
    while not chain.done:
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("a dock's run took too long")
    if not chain.ok:
        raise RuntimeError(chain.error)


def grab(app, widget, path: Path, width: int = WIDTH, height: int | None = None) -> Path:
    """Show `widget` at its full content height (no scroll bar) and save what it looks like."""
    inner = widget.widget() if hasattr(widget, "widget") else None  # a dock: its scroll area's content
    body = inner.widget() if hasattr(inner, "widget") else widget
    widget.resize(width, 400)
    widget.show()
    for _ in range(5):
        app.processEvents()
    scroll = inner if hasattr(inner, "verticalScrollBar") else None
    height = height or body.sizeHint().height() + 40
    for _ in range(20):  # grow until the dock needs no scroll bar
        widget.resize(width, min(2000, height))
        for _ in range(5):
            app.processEvents()
            time.sleep(0.02)
        bar = scroll.verticalScrollBar() if scroll is not None else None
        if bar is None or not bar.isVisible() or height >= 2000:
            break
        height += bar.maximum() + 4
    widget.grab().save(str(path))
    print(path)
    return path


def render_map(layers, extent, path: Path, size: int = 520) -> Path:
    """The map as QGIS draws it: the styled layers of a run, for the README."""
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor("#f2f2f2"))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(str(path))
    print(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--size", type=int, default=384, help="simulated scene size in pixels")
    parser.add_argument("--density", type=float, default=3.0, help="landslides per simulated km²")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="landslide_mapper_screenshots_"))
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = str(work / "profile")  # never touch the user's QGIS settings
    sys.path.insert(0, str(ROOT / ".build" / "import"))

    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsSettings, QgsVectorLayer
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtWidgets import QMainWindow

    app = QgsApplication([], True)
    app.initQgis()
    try:
        from landslide_mapper.ui.doctor import keep_triton_out

        keep_triton_out()  # as the plugin does in QGIS: triton would crash next to Mesa's LLVM (OpenGL)
        from landslide_mapper.core.simulate import simulate_event
        from landslide_mapper.core.stack import build_change_stack
        from landslide_mapper.processing_provider.provider import LandslideMapperProvider
        from landslide_mapper.ui import common
        from landslide_mapper.ui.doctor import DoctorDialog
        from landslide_mapper.ui.evaluation_dock import EvaluationDock
        from landslide_mapper.ui.model_dock import ModelDock
        from landslide_mapper.ui.training_dock import TrainingDock

        provider = LandslideMapperProvider()  # keep the Python object alive while QGIS uses it
        QgsApplication.processingRegistry().addProvider(provider)
        QgsSettings().setValue(common.RUN_FOLDER, str(work / "runs"))
        window = QMainWindow()
        canvas = QgsMapCanvas(window)
        window.setCentralWidget(canvas)
        iface = DemoIface(window, canvas)
        args.out.mkdir(parents=True, exist_ok=True)

        event = simulate_event(work / "event", width=args.size, height=args.size, seed=11,
                               landslide_density=args.density)
        stack_path = build_change_stack([event.pre_s1, event.pre_s2], [event.post_s1, event.post_s2],
                                        work / "event" / "stack.tif", "setting2")
        project = QgsProject.instance()
        stack = QgsRasterLayer(str(stack_path), "Change stack (setting2)")
        inventory = QgsVectorLayer(f"{event.labels_vector}|layername=landslides", "Mapped landslides", "ogr")
        project.addMapLayers([stack, inventory])

        training = TrainingDock(iface)
        training.chip_panel.set_value("INPUT", stack.id())
        training.chip_panel.set_value("LABELS", inventory.id())
        training.chip_panel.set_value("TILE_SIZE", 64)
        training.chip_panel.set_value("STRIDE", 32)
        training.chip_panel.set_value("VALIDATION_FRACTION", 0.25)
        training.chip_more_panel.set_value("SPLIT_BLOCK", 128)
        main_panel, more_panel = training.training_panels()
        for name, value in {"EPOCHS": args.epochs, "BATCH_SIZE": 8, "LEARNING_RATE": 2e-3, "ENCODER_DEPTH": 3,
                            "DECODER_CHANNELS": "32,16,8", "PATIENCE": args.epochs}.items():
            (main_panel if name in main_panel.names() else more_panel).set_value(name, value)
        training.package_file.setFilePath(str(work / "demo_model.lmpkg"))
        training.show()
        training.run()
        wait_for(app, training.chain)
        grab(app, training, args.out / "training_dock.png")

        model = ModelDock(iface)
        model.load_package(training.package_path)
        model.run()
        wait_for(app, model.chain)
        model.log_box.setCollapsed(True)
        grab(app, model, args.out / "model_dock.png")

        mask = next(layer for layer in model.last_layers if layer.name() == "Landslide mask")
        evaluation = EvaluationDock(iface)
        evaluation.prediction_box.setLayer(mask)
        evaluation.truth_box.setLayer(inventory)
        evaluation.run()
        wait_for(app, evaluation.chain)
        grab(app, evaluation, args.out / "evaluation_dock.png")

        doctor = DoctorDialog()
        grab(app, doctor, args.out / "doctor.png", width=660, height=490)

        # The map as the docks left it, over the post-event image in true colour.
        from landslide_mapper.processing_provider.styles import apply_style

        post = QgsRasterLayer(str(event.post_s2), "Post-event Sentinel-2")
        apply_style(post, "s2_composite")
        by_name = {layer.name(): layer for layer in evaluation.last_layers + model.last_layers}
        layers = [by_name["Truth: Mapped landslides"], by_name["Landslide polygons"], by_name["Confusion map"], post]
        render_map(layers, post.extent(), args.out / "map_confusion.png")
        for widget in (training, model, evaluation, doctor):
            widget.close()
            widget.deleteLater()
        app.processEvents()
        return 0
    finally:
        QgsProject.instance().clear()
        app.processEvents()
        app.exitQgis()


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    os._exit(status)  # skip interpreter teardown: PyQGIS objects that outlive QgsApplication crash it
