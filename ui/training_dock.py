"""Training dock: training chips from a stack and mapped landslides, then a model, with live learning curves.

Both steps are the `export_chips` and `train` (or `train_ensemble`) Processing algorithms, run one after the other
as background tasks; the finished package opens in the model dock with one click.
"""
from __future__ import annotations

import time
from pathlib import Path

from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer, QgsWkbTypes
from qgis.gui import QgsCollapsibleGroupBox, QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt import sip
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from .charts import LearningCurve
from .common import (
    add_run_row,
    help_button,
    icon,
    new_run,
    remember_run_root,
    report_failure,
    run_root,
    scrolling_body,
    show_status,
)
from .parameters import ParameterPanel
from .tasks import AlgorithmChain, Step, algorithm, start_chain

EXPORT = "export_chips"
TRAINERS = [("train", "Single model"), ("train_ensemble", "Ensemble of models (top-K of a grid)")]
CHIP_MAIN = {"INPUT", "LABELS", "CLASS_FIELD", "TILE_SIZE", "STRIDE", "VALIDATION_FRACTION"}
TRAIN_HANDLED = {"CHIPS", "VALIDATION_CHIPS", "OUTPUT"}


def stack_band_names(layer) -> list[str]:
    """The band names of a raster layer as our stacks write them ('pre_VV', 'dNDVI'), QGIS's "Band 1: " cut off."""
    return [layer.bandName(i).split(": ", 1)[-1] for i in range(1, layer.bandCount() + 1)]


def is_plausible_stack(layer) -> bool:
    """A raster whose band names are those of a change stack (pre_/post_ bands, dNDVI, dVV, dVH, terrain)."""
    from ..core.stack import catalogue_name

    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        return False
    for name in stack_band_names(layer):
        bare = name.split("_", 1)[1] if name.startswith(("pre_", "post_")) else name
        if name in ("dNDVI", "dVV", "dVH") or catalogue_name(bare) is not None:
            return True
    return False


def is_plausible_labels(layer) -> bool:
    """Mapped landslides: a polygon layer (a label raster is chosen by hand)."""
    return (isinstance(layer, QgsVectorLayer) and layer.isValid()
            and QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PolygonGeometry)


class TrainingDock(QgsDockWidget):
    """Chips (exported now or an existing folder) → train → package, with progress, curves and Cancel."""

    OBJECT_NAME = "LandslideMapperTrainingDock"
    loadRequested = pyqtSignal(str)  # a package path for the model dock
    runFinished = pyqtSignal(bool, str)

    def __init__(self, iface, parent=None):
        super().__init__("Model training", parent)  # short: the three docks share one tab bar
        self.setObjectName(self.OBJECT_NAME)
        self.iface = iface
        self.chain: AlgorithmChain | None = None
        self.package_path: str | None = None
        self._started = 0.0
        canvas = iface.mapCanvas() if iface is not None else None

        body, layout = scrolling_body(self)
        header = QHBoxLayout()
        intro = QLabel("Chips from mapped landslides, then a model trained on them.", body)
        intro.setWordWrap(True)
        header.addWidget(intro, 1)
        header.addWidget(help_button("Training dock", body))
        layout.addLayout(header)

        chips_box = QgsCollapsibleGroupBox("1. Training chips", body)
        chips_layout = QVBoxLayout(chips_box)
        self.export_radio = QRadioButton("Export chips from a change stack and landslide labels", chips_box)
        self.existing_radio = QRadioButton("Use an existing chip folder", chips_box)
        group = QButtonGroup(chips_box)
        group.addButton(self.export_radio)
        group.addButton(self.existing_radio)
        self.export_radio.setChecked(True)
        export_alg = algorithm(EXPORT)
        self.chip_panel = ParameterPanel(export_alg, only=CHIP_MAIN, canvas=canvas, parent=chips_box)
        self.chip_more_box = QgsCollapsibleGroupBox("More chip options", chips_box)
        self.chip_more_panel = ParameterPanel(export_alg, skip=CHIP_MAIN, canvas=canvas, parent=self.chip_more_box)
        QVBoxLayout(self.chip_more_box).addWidget(self.chip_more_panel)
        self.chip_more_box.setCollapsed(True)
        self.chips_folder = QgsFileWidget(chips_box)
        self.chips_folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.chips_folder.setToolTip("A folder written by 'Export training chips' (or ArcGIS Classified Tiles "
                                     "where 'train' reads them)")
        chips_layout.addWidget(self.export_radio)
        chips_layout.addWidget(self.chip_panel)
        chips_layout.addWidget(self.chip_more_box)
        chips_layout.addWidget(self.existing_radio)
        chips_layout.addWidget(self.chips_folder)
        self.export_radio.toggled.connect(self._on_chip_source)
        layout.addWidget(chips_box)

        model_box = QgsCollapsibleGroupBox("2. Model", body)
        model_layout = QVBoxLayout(model_box)
        self.trainer_box = QComboBox(model_box)
        self.trainer_pages: list[QWidget] = []  # one page of options per trainer; only the chosen one is shown
        self.panels: dict[str, tuple[ParameterPanel, ParameterPanel]] = {}
        for alg_id, label in TRAINERS:
            alg = algorithm(alg_id)
            if alg is None:
                continue
            page = QWidget(model_box)
            page_layout = QVBoxLayout(page)
            page_layout.setContentsMargins(0, 0, 0, 0)
            main = ParameterPanel(alg, TRAIN_HANDLED, advanced=False, canvas=canvas, parent=page)
            more_box = QgsCollapsibleGroupBox("Advanced", page)
            more = ParameterPanel(alg, TRAIN_HANDLED, advanced=True, canvas=canvas, parent=more_box)
            QVBoxLayout(more_box).addWidget(more)
            more_box.setCollapsed(True)
            page_layout.addWidget(main)
            page_layout.addWidget(more_box)
            self.trainer_pages.append(page)
            self.trainer_box.addItem(label, alg_id)
            self.panels[alg_id] = (main, more)
        self.trainer_box.currentIndexChanged.connect(self._show_trainer)
        self.trainer_box.setVisible(self.trainer_box.count() > 1)
        self.package_file = QgsFileWidget(model_box)
        self.package_file.setStorageMode(QgsFileWidget.SaveFile)
        self.package_file.setFilter("Landslide Mapper model package (*.lmpkg)")
        self.package_file.setToolTip("Where the package goes; empty = model.lmpkg in a new run folder")
        form = QFormLayout()
        form.addRow("Package", self.package_file)
        model_layout.addWidget(self.trainer_box)
        for page in self.trainer_pages:
            model_layout.addWidget(page)
        model_layout.addLayout(form)
        layout.addWidget(model_box)

        add_run_row(self, body, layout, "train", "Train")
        self.curve = LearningCurve(body)
        layout.addWidget(self.curve)
        self.load_button = QPushButton(icon("model"), "Open the package in the model dock", body)
        self.load_button.setEnabled(False)
        self.load_button.clicked.connect(self._request_load)
        layout.addWidget(self.load_button)
        layout.addStretch(1)
        self._on_chip_source(True)
        self._show_trainer(0)
        self.choose_plausible_inputs()
        QgsProject.instance().layersAdded.connect(self.choose_plausible_inputs)
        if not self.panels:
            self.run_button.setEnabled(False)
            show_status(self.status, "The 'train' algorithm is not available: is the Landslide Mapper provider "
                                     "enabled?", error=True)

    # -- choices -----------------------------------------------------------------------------------------------
    def choose_plausible_inputs(self, *_args) -> None:
        """Preselect a change stack (a raster with stack band names) and landslide polygons where the current
        choice is not one; otherwise leave the choice empty (never a confusion map as both)."""
        if "INPUT" not in self.chip_panel.names():
            return
        project = QgsProject.instance()
        for name, plausible in (("INPUT", is_plausible_stack), ("LABELS", is_plausible_labels)):
            current = project.mapLayer(str(self.chip_panel.wrappers[name].parameterValue() or ""))
            if current is not None and plausible(current):
                continue
            candidates = [layer for layer in project.mapLayers().values() if plausible(layer)]
            candidates.sort(key=lambda layer: "landslide" not in layer.name().lower())
            if candidates:
                self.chip_panel.set_value(name, candidates[0].id())
                continue
            # Required, yet better empty than a wrong layer: the user picks one. The Processing widget's inner
            # layer list is a QgsMapLayerComboBox that PyQt knows only as a QComboBox.
            for child in self.chip_panel.widget(name).findChildren(QComboBox):
                if child.metaObject().className() == "QgsMapLayerComboBox":
                    combo = sip.cast(child, QgsMapLayerComboBox)
                    combo.setAllowEmptyLayer(True)
                    combo.setLayer(None)

    def _on_chip_source(self, exporting: bool) -> None:
        self.chip_panel.setEnabled(exporting)
        self.chip_more_box.setEnabled(exporting)
        self.chips_folder.setEnabled(not exporting)

    def _show_trainer(self, index: int) -> None:
        for i, page in enumerate(self.trainer_pages):
            page.setVisible(i == index)

    def trainer(self) -> str:
        return self.trainer_box.currentData() or "train"

    def training_panels(self) -> tuple[ParameterPanel, ParameterPanel]:
        return self.panels[self.trainer()]

    def steps(self, folder: Path) -> list[Step]:
        """export_chips (unless a folder is given) then the trainer, as the toolbox would run them."""
        steps = []
        if self.export_radio.isChecked():
            chip_params = {**self.chip_panel.values(), **self.chip_more_panel.values(),
                           "OUTPUT_FOLDER": str(folder / "chips")}
            steps.append(Step("chips", EXPORT, chip_params, "Exporting training chips"))
            chips = lambda results: results["chips"]["OUTPUT_FOLDER"]  # noqa: E731
        else:
            existing = self.chips_folder.filePath()
            if not existing or not Path(existing).is_dir():
                raise ValueError("Choose the chip folder to train on.")
            chips = lambda results: existing  # noqa: E731
        main, more = self.training_panels()
        package = self.package_file.filePath() or str(folder / "model.lmpkg")
        if not package.lower().endswith(".lmpkg"):
            package += ".lmpkg"
        fixed = {**main.values(), **more.values(), "OUTPUT": package}
        steps.append(Step("train", self.trainer(), lambda results: {**fixed, "CHIPS": chips(results)},
                          "Training the model"))
        return steps

    # -- run ---------------------------------------------------------------------------------------------------
    def run(self) -> bool:
        if self.chain is not None and self.chain.running:
            return False
        try:
            root = run_root()
            name, folder = new_run("Training", time.strftime("%H%M%S"), root)
            steps = self.steps(folder)
        except (ValueError, OSError) as exc:
            show_status(self.status, str(exc), error=True)
            return False
        remember_run_root(root)
        self.run_name, self.run_folder = name, folder
        self.package_path = None
        self.load_button.setEnabled(False)
        self.curve.clear()
        self._started = time.monotonic()
        start_chain(self, steps, self._on_message)
        self._update_buttons()
        return True

    def cancel(self) -> None:
        if self.chain is not None and self.chain.running:
            show_status(self.status, "Canceling … (stops after the current batch)")
            self.chain.cancel()

    def _update_buttons(self) -> None:
        running = self.chain is not None and self.chain.running
        self.run_button.setEnabled(bool(self.panels) and not running)
        self.cancel_button.setEnabled(running)

    def _on_message(self, text: str, is_error: bool) -> None:
        if not is_error:
            row = self.curve.add_log_line(text)
            if row and self.curve.epochs:
                last = self.curve.epochs[-1]
                show_status(self.status, f"Epoch {last['epoch']}/{last['epochs']}: validation F1 "
                                         f"{last['val_f1']:.3f}")

    def _on_finished(self, ok: bool, results: dict, error: str) -> None:
        self._update_buttons()
        if not ok:
            report_failure(self, error, "Canceled: no package was written. The last finished epoch is kept in "
                                        "'<package>.checkpoint' beside it: train again with the same settings to "
                                        "resume, or delete that folder.")
            return
        outputs = results.get("train", {})
        self.package_path = outputs.get("OUTPUT")
        f1 = outputs.get("F1")
        score = f", validation F1 {f1:.3f}" if isinstance(f1, float) else ""
        show_status(self.status, f"Done in {time.monotonic() - self._started:.0f} s{score}. Package: "
                                 f"{self.package_path}")
        self.load_button.setEnabled(bool(self.package_path))
        self.runFinished.emit(True, self.package_path or "")

    def _request_load(self) -> None:
        if self.package_path:
            self.loadRequested.emit(self.package_path)
