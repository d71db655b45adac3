"""Evaluation dock: check a landslide map against mapped landslides, and compare two maps.

It runs the `evaluate` Processing algorithm (and `compare_predictions` when a second map is chosen) as background
tasks, shows the scores in a table and on a performance diagram, and adds the confusion map (and the 7-colour
comparison map) with the truth outlines to a layer group named after the run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer, QgsVectorLayer
from qgis.gui import (
    QgsCollapsibleGroupBox,
    QgsDockWidget,
    QgsFieldComboBox,
    QgsFileWidget,
    QgsMapLayerComboBox,
)
from qgis.PyQt.QtCore import Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..processing_provider.styles import apply_style
from .charts import PerformanceDiagram
from .common import (
    add_run_row,
    add_to_group,
    help_button,
    load_layer,
    new_run,
    remember_run_root,
    report_failure,
    result_group,
    run_root,
    scrolling_body,
    show_status,
    status_label,
)
from .parameters import ParameterPanel
from .tasks import AlgorithmChain, Step, algorithm, start_chain

EVALUATE = "evaluate"
COMPARE = "compare_predictions"
HANDLED = {"PREDICTION", "TRUTH", "TRUTH_FIELD", "THRESHOLD"}
MAIN_SCORES = ["PRECISION", "RECALL", "F1", "MCC", "IOU"]  # first rows; compared maps get a column each
# Pixel counts from the JSON report, for versions of `evaluate` that do not return them as outputs.
REPORT_COUNTS = [("TP", "tp", "True positive pixels"), ("FP", "fp", "False positive pixels"),
                 ("FN", "fn", "False negative pixels"), ("TN", "tn", "True negative pixels")]


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def score_rows(alg, outputs: dict) -> list[tuple[str, str, object]]:
    """(key, label, value) of every number `evaluate` returned, labelled as the algorithm labels its outputs."""
    rows = {}
    for definition in alg.outputDefinitions() if alg is not None else []:
        key = definition.name()
        if definition.type() == "outputNumber" and _number(outputs.get(key)) is not None:
            rows[key] = (key, definition.description(), outputs[key])
    report = outputs.get("OUTPUT_REPORT")
    if report and str(report).lower().endswith(".json") and Path(report).is_file():
        data = json.loads(Path(report).read_text())
        metrics = data.get("metrics", {}) if isinstance(data, dict) else {}
        for key, name, label in REPORT_COUNTS:
            if key not in rows and _number(metrics.get(name)) is not None:
                rows[key] = (key, label, metrics[name])
        if metrics.get("classes"):  # a class map: one row per class, and no binary-only rows without a value
            rows = {k: r for k, r in rows.items() if not (isinstance(r[2], float) and not math.isfinite(r[2]))}
            for c in metrics["classes"]:
                detail = ", ".join(f"{n} {format_score(c.get(k))}" for k, n in (("precision", "precision"),
                                                                                   ("recall", "recall"),
                                                                                   ("iou", "IoU")))
                rows[f"CLASS_{c['value']}"] = (f"CLASS_{c['value']}", f"F1 of {c['name']} ({detail})", c.get("f1"))
    first = [rows.pop(k) for k in MAIN_SCORES if k in rows]
    return first + list(rows.values())


def format_score(value) -> str:
    if _number(value) is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) > 1):
        return f"{int(value):,}"
    return f"{value:.3f}"


class EvaluationDock(QgsDockWidget):
    """Prediction + truth → scores table, performance diagram, confusion map; optionally a second map compared."""

    OBJECT_NAME = "LandslideMapperEvaluationDock"
    runFinished = pyqtSignal(bool, str)

    def __init__(self, iface, parent=None):
        super().__init__("Map evaluation", parent)  # short: the three docks share one tab bar
        self.setObjectName(self.OBJECT_NAME)
        self.iface = iface
        self.chain: AlgorithmChain | None = None
        self.last_group = None
        self.last_layers = []
        self.last_rows: list = []
        alg = algorithm(EVALUATE)
        self.can_compare = algorithm(COMPARE) is not None

        body, layout = scrolling_body(self)

        inputs = QgsCollapsibleGroupBox("What to check", body)
        form = QFormLayout(inputs)
        self.prediction_box = QgsMapLayerComboBox(inputs)
        self.prediction_box.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.prediction_box.setToolTip("A landslide mask (1 = landslide) or a probability raster")
        self.truth_box = QgsMapLayerComboBox(inputs)
        self.truth_box.setFilters(QgsMapLayerProxyModel.RasterLayer | QgsMapLayerProxyModel.PolygonLayer)
        self.truth_box.setToolTip("Mapped landslides: polygons with a class field, or a label raster")
        self.field_box = QgsFieldComboBox(inputs)
        self.field_box.setToolTip("Polygons whose value in this field is > 0 are landslides")
        self.truth_box.layerChanged.connect(self._on_truth_changed)
        self.threshold_box = QDoubleSpinBox(inputs)
        self.threshold_box.setRange(0.0, 1.0)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setValue(0.5)
        self.threshold_box.setToolTip("Cut for a probability raster (a mask is used as it is)")
        self.second_box = QgsMapLayerComboBox(inputs)
        self.second_box.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.second_box.setAllowEmptyLayer(True)
        self.second_box.setLayer(None)
        self.second_box.setToolTip("Optional second map (e.g. an ensemble against a single model): adds the "
                                   "7-colour comparison map of 'Compare two landslide maps'")
        form.addRow("Prediction", self.prediction_box)
        form.addRow("Truth", self.truth_box)
        form.addRow("Class field", self.field_box)
        form.addRow("Threshold", self.threshold_box)
        form.addRow("Compare with", self.second_box)
        if not self.can_compare:
            self.second_box.setEnabled(False)
            self.second_box.setToolTip("Comparing two maps needs the 'compare_predictions' algorithm, which this "
                                       "version of the plugin does not have.")
        self.folder_widget = QgsFileWidget(inputs)
        self.folder_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder_widget.setFilePath(run_root())
        form.addRow("Output folder", self.folder_widget)
        header = QHBoxLayout()
        header.addWidget(QLabel("Check a landslide map against mapped landslides.", body), 1)
        header.addWidget(help_button("Evaluation dock", body))
        layout.addLayout(header)
        layout.addWidget(inputs)

        self.options_box = QgsCollapsibleGroupBox("More options", body)
        self.options_panel = ParameterPanel(alg, HANDLED, canvas=iface.mapCanvas() if iface else None,
                                            parent=self.options_box)
        QVBoxLayout(self.options_box).addWidget(self.options_panel)
        self.options_box.setCollapsed(True)
        layout.addWidget(self.options_box)

        add_run_row(self, body, layout, "evaluate", "Evaluate")

        results = QgsCollapsibleGroupBox("Scores", body)
        results_layout = QVBoxLayout(results)
        self.table = QTableWidget(0, 2, results)
        self.table.setHorizontalHeaderLabels(["Score", "Value"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.setMinimumHeight(12 * (self.table.fontMetrics().height() + 6))
        results_layout.addWidget(self.table)
        self.legend = QWidget(results)
        self.legend_layout = QGridLayout(self.legend)
        self.legend_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addWidget(self.legend)
        self.report_links = status_label(results)
        results_layout.addWidget(self.report_links)
        self.diagram = PerformanceDiagram(results)
        self.diagram.setToolTip("One point per map evaluated in this session: higher = fewer landslides missed, "
                                "further right = fewer false alarms; curves = equal IoU, dashed = equal bias")
        results_layout.addWidget(self.diagram)
        layout.addWidget(results)
        layout.addStretch(1)

        for box in (self.prediction_box, self.truth_box):
            box.layerChanged.connect(self._update_run_button)
        self._on_truth_changed(self.truth_box.currentLayer())
        self._update_run_button()

    # -- inputs ------------------------------------------------------------------------------------------------
    def _on_truth_changed(self, layer) -> None:
        is_vector = isinstance(layer, QgsVectorLayer)
        self.field_box.setLayer(layer if is_vector else None)
        self.field_box.setEnabled(is_vector)
        if is_vector and layer.fields().count():
            self.field_box.setField("class" if layer.fields().indexOf("class") >= 0 else layer.fields()[0].name())
        self._update_run_button()

    def _update_run_button(self, *_args) -> None:
        running = self.chain is not None and self.chain.running
        ready = self.prediction_box.currentLayer() is not None and self.truth_box.currentLayer() is not None
        self.run_button.setEnabled(ready and not running)
        self.cancel_button.setEnabled(running)

    def steps(self, folder: Path) -> list[Step]:
        """`evaluate` of the prediction, then `compare_predictions` against the second map when one is chosen."""
        prediction, truth = self.prediction_box.currentLayer(), self.truth_box.currentLayer()
        common = {"TRUTH": truth.source()}
        if isinstance(truth, QgsVectorLayer) and self.field_box.currentField():
            common["TRUTH_FIELD"] = self.field_box.currentField()
        evaluate = {**common, "PREDICTION": prediction.source(), "THRESHOLD": self.threshold_box.value(),
                    "OUTPUT_CONFUSION": str(folder / "confusion.tif"), "OUTPUT_REPORT": str(folder / "report.json"),
                    **self.options_panel.values()}
        steps = [Step("evaluate", EVALUATE, evaluate, f"Evaluating {prediction.name()}")]
        second = self.second_box.currentLayer()
        if self.can_compare and second is not None:
            compare = {**common, "PREDICTION_A": prediction.source(), "NAME_A": prediction.name(),
                       "THRESHOLD_A": self.threshold_box.value(), "PREDICTION_B": second.source(),
                       "NAME_B": second.name(), "THRESHOLD_B": self.threshold_box.value(),
                       "OUTPUT_COMPARISON": str(folder / "comparison.tif"),
                       "OUTPUT_REPORT": str(folder / "comparison.json")}
            steps.append(Step("compare", COMPARE, compare, f"Comparing {prediction.name()} with {second.name()}"))
        return steps

    # -- run ---------------------------------------------------------------------------------------------------
    def run(self) -> bool:
        if self.chain is not None and self.chain.running:
            return False
        prediction = self.prediction_box.currentLayer()
        if prediction is None or self.truth_box.currentLayer() is None:
            show_status(self.status, "Choose a prediction and the truth to check it against.", error=True)
            return False
        root = self.folder_widget.filePath() or run_root()
        try:
            name, folder = new_run("Evaluation", prediction.name(), root)
        except OSError as exc:
            show_status(self.status, str(exc), error=True)
            return False
        remember_run_root(root)
        self.run_name, self.run_folder = name, folder
        self.names = (prediction.name(), self.second_box.currentLayer().name()
                      if self.second_box.currentLayer() is not None else None)
        start_chain(self, self.steps(folder))
        self._update_run_button()
        return True

    def cancel(self) -> None:
        if self.chain is not None and self.chain.running:
            self.chain.cancel()

    def _on_finished(self, ok: bool, results: dict, error: str) -> None:
        self._update_run_button()
        if not ok:
            report_failure(self, error, "Canceled.")
            return
        outputs = results.get("evaluate", {})
        compared = results.get("compare")
        self.last_rows = score_rows(algorithm(EVALUATE), outputs)
        self.show_scores(self.last_rows, compared)
        layers = []
        while self.legend_layout.count():
            self.legend_layout.takeAt(0).widget().deleteLater()
        truth = self.truth_box.currentLayer()
        if isinstance(truth, QgsVectorLayer):  # truth outlines in white, above the colours
            outline = QgsVectorLayer(truth.source(), f"Truth: {truth.name()}", truth.providerType())
            if outline.isValid():
                apply_style(outline, "truth_outline.qml")
                layers.append(outline)
        if compared and compared.get("OUTPUT_COMPARISON"):
            comparison = load_layer(compared["OUTPUT_COMPARISON"], f"Comparison: A = {self.names[0]}, "
                                                                   f"B = {self.names[1]}")
            if comparison is not None:
                apply_style(comparison, "comparison.qml")
                layers.append(comparison)
                self.add_legend(comparison, "Comparison (A = prediction, B = second map)")
        confusion = load_layer(outputs.get("OUTPUT_CONFUSION") or "", "Confusion map")
        if confusion is not None:
            apply_style(confusion, "confusion.qml")
            layers.append(confusion)
            self.add_legend(confusion, "Confusion map")
        self.last_group = result_group(self.run_name)
        add_to_group(self.last_group, layers)
        self.last_layers = layers
        scores = {key: value for key, _, value in self.last_rows}
        self.diagram.add_point(self.names[0], scores.get("PRECISION"), scores.get("RECALL"))
        if compared:
            self.diagram.add_point(self.names[1], compared.get("PRECISION_B"), compared.get("RECALL_B"))
        links = [f"<a href='{QUrl.fromLocalFile(path).toString()}'>{label}</a>"
                 for key, label in (("OUTPUT_HTML", "report (HTML)"), ("OUTPUT_PERFORMANCE_DIAGRAM",
                                                                        "performance diagram (PNG)"))
                 for path in [(outputs.get(key) or "")] if path and Path(path).is_file()]
        self.report_links.setText("Open the " + " · ".join(links) if links else "")
        f1 = scores.get("F1")
        show_status(self.status, (f"Done: F1 {f1:.3f}. " if _number(f1) is not None and math.isfinite(f1) else
                                  "Done. ") + f"Layers are in the group '{self.run_name}'.")
        self.runFinished.emit(True, self.run_name)

    # -- results -----------------------------------------------------------------------------------------------
    def show_scores(self, rows: list, compared: dict | None = None) -> None:
        """One row per score; with a compared map, a column for each map (B's scores from the comparison)."""
        columns = ["Score", self.names[0] if compared else "Value"] + ([self.names[1]] if compared else [])
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(rows))
        for r, (key, label, value) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(label))
            cells = [value] + ([compared.get(f"{key}_B")] if compared else [])
            for c, cell in enumerate(cells, start=1):
                item = QTableWidgetItem(format_score(cell) if cell is not None else "")
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        for c in range(1, len(columns)):
            self.table.horizontalHeader().setSectionResizeMode(c, QHeaderView.ResizeToContents)

    def table_values(self, column: int = 1) -> dict[str, str]:
        return {self.table.item(r, 0).text(): self.table.item(r, column).text() for r in range(self.table.rowCount())}

    def add_legend(self, layer: QgsRasterLayer, title: str) -> None:
        """A layer's classes as its style draws them, under a title."""
        row = self.legend_layout.rowCount()
        heading = QLabel(f"<b>{title}</b>", self.legend)
        self.legend_layout.addWidget(heading, row, 0, 1, 4)
        for i, (label, colour) in enumerate(layer.renderer().legendSymbologyItems()):
            swatch = QLabel(self.legend)
            swatch.setFixedSize(14, 14)
            swatch.setStyleSheet(f"background-color: {QColor(colour).name()}; border: 1px solid #777;")
            self.legend_layout.addWidget(swatch, row + 1 + i // 2, (i % 2) * 2)
            self.legend_layout.addWidget(QLabel(label, self.legend), row + 1 + i // 2, (i % 2) * 2 + 1)

    def legend_labels(self) -> list[str]:
        return [w.text() for w in self.legend.findChildren(QLabel) if w.text() and not w.text().startswith("<b>")]
