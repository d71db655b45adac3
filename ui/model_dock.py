"""Model dock: open a model package, map the project's rasters to its input bands, and map landslides.

Everything it runs is the `predict` Processing algorithm with the parameters shown here, as a background task;
the results arrive in a layer group named after the run, styled (probability, mask, polygons).
"""
from __future__ import annotations

import time
from pathlib import Path

from qgis.core import QgsMapLayer, QgsProject, QgsRasterLayer
from qgis.gui import QgsCollapsibleGroupBox, QgsDockWidget, QgsExtentGroupBox, QgsFileWidget
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
)

from ..common.errors import InputError
from ..core.stack import describe_band
from .band_mapping import BandMappingWidget, mapping_parameters
from .common import (
    add_run_row,
    add_to_group,
    help_button,
    icon,
    load_layer,
    new_run,
    recent_packages,
    remember_package,
    remember_run_root,
    report_failure,
    result_group,
    run_root,
    scrolling_body,
    show_status,
)
from .layer_styles import style_probability
from .model_card import model_card_html
from .parameters import ParameterPanel
from .tasks import AlgorithmChain, Step, algorithm, start_chain

PREDICT = "predict"
# Parameters this dock lays out itself; every other one of `predict` appears in the option panels.
HANDLED = {"PACKAGE", "INPUT", "OTHER_INPUTS", "BAND_MAPPING", "EXTENT", "THRESHOLD", "DEVICE"}
OUTPUT_FILES = {"OUTPUT_PROBABILITY": "probability.tif", "OUTPUT_MASK": "mask.tif",
                "OUTPUT_POLYGONS": "landslides.gpkg"}
# Result layers, top of the group first: (output, layer name, style)
RESULT_LAYERS = [("OUTPUT_POLYGONS", "Landslide polygons", "predicted_polygons.qml"),
                 ("OUTPUT_MASK", "Landslide mask", "mask.qml"),
                 ("OUTPUT_PROBABILITY", "Landslide probability", None)]


class CardView(QTextBrowser):
    """The model card, as tall as its text (up to `max_card`), so bands and scores show without scrolling."""

    max_card = 380

    def __init__(self, parent=None):
        super().__init__(parent)
        self.document().contentsChanged.connect(self._fit)

    def resizeEvent(self, event):  # noqa: N802 (Qt)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        self.document().setTextWidth(self.viewport().width())
        height = int(self.document().size().height()) + 2 * self.frameWidth() + 4
        height = max(60, min(self.max_card, height))
        if height != self.height():
            self.setFixedHeight(height)


def extent_parameter(rect, crs) -> str:
    """An extent as Processing parameters write it: 'xmin,xmax,ymin,ymax [EPSG:…]'."""
    return (f"{rect.xMinimum()!r},{rect.xMaximum()!r},{rect.yMinimum()!r},{rect.yMaximum()!r}"
            f" [{crs.authid()}]")


class ModelDock(QgsDockWidget):
    """Load a .lmpkg (browse, drop, recent list), check its card, map bands, choose area and options, run."""

    OBJECT_NAME = "LandslideMapperModelDock"
    packageLoaded = pyqtSignal(str)
    runFinished = pyqtSignal(bool, str)  # ok, group name or error message

    def __init__(self, iface, parent=None):
        super().__init__("Landslide mapping", parent)  # short: the three docks share one tab bar
        self.setObjectName(self.OBJECT_NAME)
        self.iface = iface
        self.package_path: str | None = None
        self.manifest: dict | None = None
        self.chain: AlgorithmChain | None = None
        self.last_group = None
        self.last_layers: list[QgsMapLayer] = []
        self.last_results: dict = {}
        self._started = 0.0
        self.setAcceptDrops(True)

        body, layout = scrolling_body(self)

        row = QHBoxLayout()
        self.package_box = QComboBox(body)
        self.package_box.setToolTip("Model package (.lmpkg): choose a recent one, browse, or drop a file here")
        self.package_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.package_box.setMinimumContentsLength(16)
        self.package_box.activated.connect(self._on_recent_chosen)
        self.browse_button = QToolButton(body)
        self.browse_button.setText("…")
        self.browse_button.setToolTip("Open a model package (.lmpkg)")
        self.browse_button.clicked.connect(self.browse)
        row.addWidget(QLabel("Model", body))
        row.addWidget(self.package_box, 1)
        row.addWidget(self.browse_button)
        row.addWidget(help_button("Model dock", body))
        layout.addLayout(row)

        self.card = CardView(body)
        self.card.setHtml("<p style='color:#666'>Open a model package (.lmpkg) with <b>…</b>, pick a recent one, "
                          "or drop the file on this panel. Train one in the Training dock.</p>")
        layout.addWidget(self.card)

        bands_box = QgsCollapsibleGroupBox("Input bands", body)
        bands_layout = QVBoxLayout(bands_box)
        self.bands = BandMappingWidget(bands_box)
        self.bands.changed.connect(self._on_mapping_changed)
        self.auto_button = QPushButton(icon("model"), "Map bands by name", bands_box)
        self.auto_button.setToolTip("Find each input band among the project's rasters by band description")
        self.auto_button.clicked.connect(self.bands.auto_map)
        bands_layout.addWidget(self.bands)
        bands_layout.addWidget(self.auto_button, 0, Qt.AlignRight)
        layout.addWidget(bands_box)

        self.extent = QgsExtentGroupBox(body)
        self.extent.setTitleBase("Limit to extent")
        self.extent.setCheckable(True)
        self.extent.setChecked(False)
        self.extent.setCollapsed(True)
        if iface is not None and iface.mapCanvas() is not None:
            self.extent.setMapCanvas(iface.mapCanvas())
        layout.addWidget(self.extent)

        options_box = QgsCollapsibleGroupBox("Options", body)
        form = QFormLayout(options_box)
        self.device_box = QComboBox(options_box)
        self.device_box.setToolTip("auto = a CUDA GPU when PyTorch sees one, else the CPU")
        self.threshold_box = QDoubleSpinBox(options_box)
        self.threshold_box.setRange(0.0, 1.0)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setDecimals(2)
        self.threshold_box.setToolTip("Probability from which a pixel is mapped as landslide; the package's "
                                      "own threshold was chosen on validation data")
        self.polygons_check = QCheckBox("Landslide polygons (GeoPackage)", options_box)
        self.polygons_check.setChecked(True)
        self.folder_widget = QgsFileWidget(options_box)
        self.folder_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder_widget.setFilePath(run_root())
        self.folder_widget.setToolTip("Each run writes into a new sub-folder named after it")
        form.addRow("Device", self.device_box)
        form.addRow("Threshold", self.threshold_box)
        form.addRow(self.polygons_check)
        form.addRow("Output folder", self.folder_widget)
        layout.addWidget(options_box)

        alg = algorithm(PREDICT)
        canvas = iface.mapCanvas() if iface is not None else None
        self.post_box = QgsCollapsibleGroupBox("Post-processing", body)
        self.post_panel = ParameterPanel(alg, HANDLED, advanced=False, canvas=canvas, parent=self.post_box)
        QVBoxLayout(self.post_box).addWidget(self.post_panel)
        layout.addWidget(self.post_box)
        self.advanced_box = QgsCollapsibleGroupBox("Masks and advanced options", body)
        self.advanced_panel = ParameterPanel(alg, HANDLED, advanced=True, canvas=canvas, parent=self.advanced_box)
        QVBoxLayout(self.advanced_box).addWidget(self.advanced_panel)
        self.advanced_box.setCollapsed(True)
        layout.addWidget(self.advanced_box)
        self._set_up_from_algorithm(alg)

        add_run_row(self, body, layout, "run", "Run", "Map landslides with the 'predict' algorithm in the background")
        self.log_box = QgsCollapsibleGroupBox("Log", body)
        self.log = QPlainTextEdit(self.log_box)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        QVBoxLayout(self.log_box).addWidget(self.log)
        self.log_box.setCollapsed(True)
        layout.addWidget(self.log_box)
        layout.addStretch(1)

        self._refresh_recent()
        self._update_run_button()
        QgsProject.instance().layersAdded.connect(self._on_layers_added)

    # -- package -------------------------------------------------------------------------------------------------
    def _set_up_from_algorithm(self, alg) -> None:
        """Offer what the installed `predict` offers (devices, polygons)."""
        if alg is None:
            return
        device = alg.parameterDefinition("DEVICE")
        self.device_box.addItems(device.options() if device is not None else ["auto"])
        has_polygons = alg.parameterDefinition("OUTPUT_POLYGONS") is not None
        self.polygons_check.setVisible(has_polygons)
        self.polygons_check.setChecked(has_polygons)
        if not self.post_panel.names():
            self.post_box.setVisible(False)

    def _refresh_recent(self) -> None:
        self.package_box.blockSignals(True)
        self.package_box.clear()
        for path in recent_packages():
            self.package_box.addItem(Path(path).name, path)
            self.package_box.setItemData(self.package_box.count() - 1, path, Qt.ToolTipRole)
        if self.package_path:
            self.package_box.setCurrentIndex(max(0, self.package_box.findData(self.package_path)))
        else:
            self.package_box.setCurrentIndex(-1)
        self.package_box.blockSignals(False)

    def _on_recent_chosen(self, index: int) -> None:
        path = self.package_box.itemData(index)
        if path and path != self.package_path:
            self.load_package(path)

    def browse(self) -> None:
        start = str(Path(self.package_path).parent) if self.package_path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a model package", start,
                                              "Landslide Mapper model package (*.lmpkg)")
        if path:
            self.load_package(path)

    def load_package(self, path: str) -> bool:
        """Read the package's card (no torch needed), show it and map its input bands."""
        from ..models.manifest import read_manifest

        try:
            manifest = read_manifest(path)
        except InputError as exc:
            show_status(self.status, str(exc), error=True)
            return False
        self.package_path, self.manifest = str(path), manifest
        remember_package(self.package_path)
        self._refresh_recent()
        self.card.setHtml(model_card_html(manifest, path))
        self.threshold_box.setValue(float(manifest["threshold"]))
        self.threshold_box.setToolTip(f"The package's own threshold is {float(manifest['threshold']):.2f}, "
                                      f"chosen on validation data")
        self.bands.set_inputs(manifest["input_bands"], {b: describe_band(b) for b in manifest["input_bands"]})
        show_status(self.status, f"Model '{Path(path).name}' loaded.")
        self.packageLoaded.emit(self.package_path)
        self._update_run_button()
        return True

    # drag & drop of .lmpkg files onto the dock
    @staticmethod
    def _dropped_package(event) -> str | None:
        mime = event.mimeData()
        for url in mime.urls() if mime is not None and mime.hasUrls() else []:
            if url.isLocalFile() and url.toLocalFile().lower().endswith(".lmpkg"):
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event):  # noqa: N802 (Qt)
        if self._dropped_package(event):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event):  # noqa: N802
        if self._dropped_package(event):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event):  # noqa: N802
        path = self._dropped_package(event)
        if path:
            event.acceptProposedAction()
            self.load_package(path)
        else:
            super().dropEvent(event)

    # -- mapping and area ------------------------------------------------------------------------------------------
    def _on_layers_added(self, layers) -> None:
        """A raster added while bands are missing may be the one they are in: map again by name."""
        if self.manifest and not self.bands.is_complete() and any(isinstance(x, QgsRasterLayer) for x in layers):
            QTimer.singleShot(0, self.bands.auto_map)  # after the layer boxes have taken the new layer in

    def _on_mapping_changed(self) -> None:
        choice = [c for c in self.bands.choice().values() if c is not None]
        if choice:
            layer = choice[0][0]
            self.extent.setOutputCrs(layer.crs())
            self.extent.setOriginalExtent(layer.extent(), layer.crs())
            if not self.extent.isChecked():
                self.extent.setCurrentExtent(layer.extent(), layer.crs())
        self._update_run_button()

    def _update_run_button(self) -> None:
        running = self.chain is not None and self.chain.running
        self.run_button.setEnabled(bool(self.manifest) and self.bands.is_complete() and not running)
        self.cancel_button.setEnabled(running)

    # -- run ---------------------------------------------------------------------------------------------------
    def parameters(self, folder: Path) -> dict:
        """The `predict` parameters of the current choices, outputs in `folder`."""
        choice = self.bands.choice()
        params = mapping_parameters(choice)
        alg = algorithm(PREDICT)
        if "BAND_MAPPING" in params and alg.parameterDefinition("BAND_MAPPING") is None:
            raise InputError("This version of 'predict' takes one stack raster: build a change stack with all "
                             "input bands first (Prepare inputs ▸ Build change stack).")
        params.update(PACKAGE=self.package_path, THRESHOLD=self.threshold_box.value(),
                      DEVICE=self.device_box.currentIndex())
        for name, file_name in OUTPUT_FILES.items():
            if alg.parameterDefinition(name) is None:
                continue
            if name == "OUTPUT_POLYGONS" and not self.polygons_check.isChecked():
                continue
            params[name] = str(folder / file_name)
        if self.extent.isChecked():
            params["EXTENT"] = extent_parameter(self.extent.outputExtent(), self.extent.outputCrs())
        params.update(self.post_panel.values())
        params.update(self.advanced_panel.values())
        return params

    def run(self) -> bool:
        """Start `predict` as a background task; False (with a red message) when something is missing."""
        if self.chain is not None and self.chain.running:
            return False
        if not self.manifest:
            show_status(self.status, "Open a model package first.", error=True)
            return False
        if not self.bands.is_complete():
            show_status(self.status, self.bands.message.text(), error=True)
            return False
        folder_root = self.folder_widget.filePath() or run_root()
        try:
            name, folder = new_run("Landslide map", Path(self.package_path).stem, folder_root)
            params = self.parameters(folder)
        except (InputError, OSError) as exc:
            show_status(self.status, str(exc), error=True)
            return False
        remember_run_root(folder_root)
        self.run_name, self.run_folder = name, folder
        self.log.clear()
        self._started = time.monotonic()
        start_chain(self, [Step("predict", PREDICT, params, f"Mapping landslides: {name}")], self._log)
        self._update_run_button()
        return True

    def cancel(self) -> None:
        if self.chain is not None and self.chain.running:
            show_status(self.status, "Canceling …")
            self.chain.cancel()

    def _log(self, text: str, is_error: bool) -> None:
        self.log.appendPlainText(("ERROR: " if is_error else "") + text)

    def result_layer(self, output: str):
        """The layer of the last run for an output key such as OUTPUT_MASK, if it was added."""
        title = next((t for key, t, _ in RESULT_LAYERS if key == output), None)
        return next((layer for layer in self.last_layers if layer.name() == title), None)

    def _on_finished(self, ok: bool, results: dict, error: str) -> None:
        self._update_run_button()
        if not ok:
            report_failure(self, error, "Canceled: nothing was added to the map.")
            return
        outputs = results.get("predict", {})
        self.last_results = outputs
        threshold = float(outputs.get("THRESHOLD", self.threshold_box.value()))
        classes = (self.manifest or {}).get("classes") if (self.manifest or {}).get("task") == \
            "multiclass_segmentation" else None  # a class map: styled with the package's names and colours
        layers = []
        for key, title, qml in RESULT_LAYERS:
            if not outputs.get(key):
                continue
            layer = load_layer(outputs[key], title)
            if layer is None:
                continue
            if classes and key != "OUTPUT_PROBABILITY":
                from ..processing_provider.styles import apply_class_style

                apply_class_style(layer, classes)
            elif key == "OUTPUT_PROBABILITY":
                if not classes:  # class probabilities: one band per class, drawn as QGIS draws bands
                    style_probability(layer, threshold)
            else:
                from ..processing_provider.styles import apply_style

                apply_style(layer, qml)
            layers.append(layer)
        self.last_group = result_group(self.run_name)
        add_to_group(self.last_group, layers)
        self.last_layers = layers
        seconds = time.monotonic() - self._started
        count = outputs.get("POLYGON_COUNT")
        summary = f"{int(count)} {'class' if classes else 'landslide'} polygon(s), " \
            if isinstance(count, (int, float)) else ""
        summary += f"{len(classes)} classes" if classes else f"threshold {threshold:.2f}"
        show_status(self.status, f"Done in {seconds:.0f} s: {summary}. Layers are in the "
                                 f"group '{self.run_name}'; files in {self.run_folder}.")
        self.runFinished.emit(True, self.run_name)
