"""evaluate: prediction + truth → confusion map, pixel and object scores, threshold sweep, performance diagram."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..common.errors import InputError
from ..core.metrics import ObjectRule, evaluate_class_map, evaluate_prediction, read_class_table
from .base import LandslideAlgorithm, extent_or_none, layer_file

METRICS = {"PRECISION": "precision", "RECALL": "recall", "F1": "f1", "MCC": "mcc", "IOU": "iou"}
LABELS = {"PRECISION": "Precision", "RECALL": "Recall", "F1": "F1 score", "MCC": "Matthews correlation (MCC)",
          "IOU": "Intersection over union (IoU)"}
MORE_METRICS = {"BIAS": ("bias", "Frequency bias (mapped / real area)"), "ACCURACY": ("accuracy", "Accuracy"),
                "KAPPA": ("kappa", "Cohen's kappa"), "TP": ("tp", "True positive pixels"),
                "FP": ("fp", "False positive pixels"), "FN": ("fn", "False negative pixels"),
                "TN": ("tn", "True negative pixels"),
                "BALANCED_ACCURACY": ("balanced_accuracy", "Balanced accuracy (mean recall of the classes)")}
CLASS_OUTPUTS = {"MACRO_F1": ("macro_f1", "Macro F1 (class map: mean F1 of the classes)"),
                 "MACRO_IOU": ("macro_iou", "Macro IoU (class map)"),
                 "WEIGHTED_F1": ("weighted_f1", "Weighted F1 (class map: by pixels in truth)")}
OBJECT_OUTPUTS = {"LANDSLIDES": ("landslides", "Landslides in truth (objects)"),
                  "DETECTED": ("detected", "Landslides detected"), "MISSED": ("missed", "Landslides missed"),
                  "FALSE_OBJECTS": ("false_objects", "False objects (mapped, not real)"),
                  "OBJECT_RECALL": ("object_recall", "Object recall (share of landslides detected)"),
                  "OBJECT_PRECISION": ("object_precision", "Object precision (share of mapped objects real)")}
PREDICTION_TYPES = ["Auto (floating point = probability; integer = mask; with a class table = class map)",
                    "Mask (> 0 = landslide)", "Probability (cut at the threshold)",
                    "Class map (class values such as bedrock / wetland / ravine)"]
CONNECTIVITY = ["8 neighbours (diagonal pixels join)", "4 neighbours (edges only)"]


def number(value) -> float:
    """A score as a Processing number: undefined (None) becomes NaN rather than a misleading 0."""
    return float("nan") if value is None else float(value)


def optional_layer_file(alg, parameters, name: str, context, what: str) -> tuple[str | None, str | None]:
    layer = alg.parameterAsLayer(parameters, name, context) if parameters.get(name) else None
    return layer_file(layer, what) if layer is not None else (None, None)


def parse_size_classes(text: str) -> tuple[float, ...]:
    """'1000, 5000, 10000' → (1000.0, 5000.0, 10000.0) (upper limits of object size classes in m²)."""
    try:
        return tuple(float(t) for t in text.replace(";", ",").split(",") if t.strip())
    except ValueError:
        raise InputError(f"Size classes must be numbers in m² separated by commas, e.g. '1000, 5000'; got "
                         f"'{text}'.") from None


def is_class_map(path) -> bool:
    """An integer raster that carries a class table (a multi-class prediction's class map)."""
    import numpy as np
    import rasterio

    with rasterio.open(path) as src:
        if np.dtype(src.dtypes[0]).kind not in "iu":
            return False
    return bool(read_class_table(path))


def report_outputs(files: dict) -> dict:
    """The report's side files as Processing outputs (None where not written)."""
    def path(key):
        return str(files[key]) if key in files else None

    return {"OUTPUT_HTML": path("html"), "OUTPUT_PERFORMANCE_DIAGRAM": path("performance_diagram"),
            "OUTPUT_SWEEP_CSV": path("sweep_csv"), "OUTPUT_SWEEP_PLOT": path("sweep_plot")}


class EvaluateAlgorithm(LandslideAlgorithm):
    _id = "evaluate"
    _display_name = "Evaluate landslide map"
    _group = "Mapping and evaluation"
    _group_id = "mapping"
    _help = (
        "Checks a landslide map against mapped landslides (truth), pixel by pixel and landslide by landslide.\n\n"
        "<b>Prediction</b>: a mask (1 = landslide) or a probability raster (landslide where p ≥ threshold).\n"
        "<b>Truth</b>: landslide polygons (class field > 0; any CRS, reprojected) or a label raster (> 0).\n"
        "<b>Evaluation area</b> (optional): polygons (or a raster > 0) of the ground that was really mapped; "
        "pixels outside it, and nodata in either input (e.g. clouds), are left out.\n"
        "<b>Confusion map</b>: green = landslide found (true positive), red = false alarm (false positive), "
        "blue = landslide missed (false negative), grey = correctly empty (true negative).\n"
        "<b>Pixel scores</b>: precision = share of mapped landslide pixels that are real; recall = share of real "
        "landslide pixels that were mapped; F1 balances both; MCC also accounts for correct negatives "
        "(−1…1); IoU = overlap / union; frequency bias = mapped / real area; accuracy; Cohen's kappa.\n"
        "<b>Objects</b>: each group of connected landslide pixels is one landslide. It counts as detected when "
        "the map covers at least the given share of it (0 = any pixel); a mapped object is false when it does "
        "not reach real landslides by the same rule. Counted by size class.\n"
        "<b>Threshold sweep</b> (probability input): scores at thresholds 0.00…0.99, as CSV and plot, with the "
        "threshold giving the best F1 and the best MCC.\n"
        "<b>Boundaries</b> (advanced; tolerance > 0): share of mapped outline pixels within the tolerance of a real "
        "outline and the reverse, with their F1 (how the thesis scored ravine lines).\n"
        "<b>Class maps</b> (multi-class predict output, or any raster of class values with a class table; "
        "prediction type Class map): truth holds the same class values (a label raster, or polygons whose class "
        "field holds the values or the class names). Scores per class (precision, recall, F1, IoU, one class "
        "against all others), their macro (mean of the classes in truth) and weighted (by pixels) averages, "
        "balanced accuracy (mean recall, the wetland study's score), Cohen's kappa and the confusion matrix as a "
        "table, CSV and heat map. The confusion map is drawn for one class (CONFUSION_CLASS, value or name; "
        "default the first class after background). PRECISION, RECALL, F1 and IOU are then macro averages.\n"
        "<b>Report</b>: JSON with every number, plus an HTML page (open it in a browser), the performance diagram "
        "and plots next to it. All numbers are also outputs, for models and batch runs; undefined scores (e.g. no "
        "landslide anywhere) are NaN."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("PREDICTION", "Prediction (mask or probability)"))
        self.addParameter(QgsProcessingParameterMapLayer("TRUTH", "Truth (landslide polygons or label raster)",
                                                         types=[QgsProcessing.TypeVectorPolygon,
                                                                QgsProcessing.TypeRaster]))
        self.addParameter(QgsProcessingParameterString("TRUTH_FIELD", "Class field (polygons)", defaultValue="class"))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD", "Threshold (probability input)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.5,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterMapLayer("EVALUATION_AREA", "Evaluation area (optional)",
                                                         optional=True, types=[QgsProcessing.TypeVectorPolygon,
                                                                               QgsProcessing.TypeRaster]))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterBoolean("OBJECT_METRICS", "Count landslides as objects",
                                                        defaultValue=True))
        self.addParameter(QgsProcessingParameterNumber("MIN_OVERLAP",
                                                       "Share of a landslide to map for 'detected' (0 = any pixel)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.0,
                                                       minValue=0.0, maxValue=1.0))
        advanced = [
            self.enum_parameter("PREDICTION_TYPE", "Prediction type", PREDICTION_TYPES,
                                default=0, keys=["auto", "mask", "probability", "classes"]),
            QgsProcessingParameterString("CONFUSION_CLASS", "Class of the confusion map (class map; value or "
                                         "name; empty = the first after background)", optional=True),
            self.enum_parameter("CONNECTIVITY", "Pixels of one object touch by", CONNECTIVITY,
                                default=0, keys=["8", "4"]),
            QgsProcessingParameterString("SIZE_CLASSES", "Object size class limits (m²)",
                                         defaultValue="1000, 5000, 10000, 50000"),
            QgsProcessingParameterBoolean("THRESHOLD_SWEEP", "Threshold sweep (probability input)",
                                          defaultValue=True),
            QgsProcessingParameterNumber("BOUNDARY_TOLERANCE", "Boundary scores within (pixels; 0 = off)",
                                         defaultValue=0, minValue=0, maxValue=50),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_CONFUSION", "Confusion map", optional=True,
                                                                  createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Metrics report",
                                                                "JSON files (*.json)", optional=True,
                                                                createByDefault=True))
        for key, label in LABELS.items():
            self.addOutput(QgsProcessingOutputNumber(key, label))
        for key, (_, label) in {**MORE_METRICS, **OBJECT_OUTPUTS, **CLASS_OUTPUTS}.items():
            self.addOutput(QgsProcessingOutputNumber(key, label))
        self.addOutput(QgsProcessingOutputNumber("BEST_THRESHOLD", "Threshold with the best F1 (sweep)"))
        self.addOutput(QgsProcessingOutputNumber("BEST_F1", "Best F1 over thresholds (sweep)"))
        self.addOutput(QgsProcessingOutputNumber("BOUNDARY_F1", "Boundary F1 (within the tolerance)"))
        self.addOutput(QgsProcessingOutputHtml("OUTPUT_HTML", "Evaluation report (HTML)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_PERFORMANCE_DIAGRAM", "Performance diagram (PNG)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_SWEEP_CSV", "Scores by threshold (CSV)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_SWEEP_PLOT", "Scores by threshold (PNG)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_MATRIX_PLOT", "Confusion matrix heat map (class map; PNG)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_CLASSES_CSV", "Scores per class (class map; CSV)"))

    def side_files(self, parameter, path):
        from ..core.metrics.reports import side_files

        return side_files(path) if parameter == "OUTPUT_REPORT" else []

    def compute(self, parameters, context, feedback, progress):
        pred = self.parameterAsRasterLayer(parameters, "PREDICTION", context)
        pred_path, _ = layer_file(pred, "prediction")
        truth_path, truth_layer = layer_file(self.parameterAsLayer(parameters, "TRUTH", context), "truth")
        area_path, area_layer = optional_layer_file(self, parameters, "EVALUATION_AREA", context, "evaluation area")
        confusion = self.parameterAsOutputLayer(parameters, "OUTPUT_CONFUSION", context) or None
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) or None
        kind = self.enum_index(parameters, "PREDICTION_TYPE", context)
        if kind == 3 or (kind == 0 and is_class_map(pred_path)):
            return self._evaluate_classes(parameters, context, progress, pred, pred_path, truth_path, truth_layer,
                                          area_path, area_layer, confusion, report)
        rule = None
        if self.parameterAsBool(parameters, "OBJECT_METRICS", context):
            rule = ObjectRule(min_overlap=self.parameterAsDouble(parameters, "MIN_OVERLAP", context),
                              connectivity=8 if self.enum_index(parameters, "CONNECTIVITY", context) == 0 else 4,
                              size_classes_m2=parse_size_classes(
                                  self.parameterAsString(parameters, "SIZE_CLASSES", context)))
        ev = evaluate_prediction(
            pred_path, truth_path, confusion, report,
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
            truth_field=self.parameterAsString(parameters, "TRUTH_FIELD", context) or "class",
            truth_layer=truth_layer,
            area_path=area_path,
            area_layer=area_layer,
            extent=extent_or_none(self, parameters, "EXTENT", context, pred.crs()),
            is_probability=(None, False, True)[kind],
            objects=rule,
            sweep=self.parameterAsBool(parameters, "THRESHOLD_SWEEP", context),
            boundary_tolerance=self.parameterAsInt(parameters, "BOUNDARY_TOLERANCE", context),
            name=pred.name(),
            progress=progress,
        )
        if confusion:
            self.style_output(context, confusion, "confusion.qml")
        outputs = {"OUTPUT_CONFUSION": confusion, "OUTPUT_REPORT": report, **report_outputs(ev.files)}
        outputs.update({key: number(ev.metrics[name]) for key, name in METRICS.items()})
        outputs.update({key: number(ev.metrics[name]) for key, (name, _) in MORE_METRICS.items()})
        objects = ev.objects or {}
        outputs.update({key: number(objects.get(name)) for key, (name, _) in OBJECT_OUTPUTS.items()})
        best = (ev.best or {}).get("best_f1") or {}
        outputs["BEST_THRESHOLD"] = number(best.get("threshold"))
        outputs["BEST_F1"] = number(best.get("f1"))
        outputs["BOUNDARY_F1"] = number((ev.boundary or {}).get("boundary_f1"))
        return outputs

    def _evaluate_classes(self, parameters, context, progress, pred, pred_path, truth_path, truth_layer, area_path,
                          area_layer, confusion, report) -> dict:
        """A class map: per-class scores, macro averages, confusion matrix, confusion map of one class."""
        ev = evaluate_class_map(
            pred_path, truth_path, confusion, report,
            confusion_class=self.parameterAsString(parameters, "CONFUSION_CLASS", context).strip() or None,
            truth_field=self.parameterAsString(parameters, "TRUTH_FIELD", context) or "class",
            truth_layer=truth_layer, area_path=area_path, area_layer=area_layer,
            extent=extent_or_none(self, parameters, "EXTENT", context, pred.crs()), name=pred.name(),
            progress=progress)
        if confusion:
            self.style_output(context, confusion, "confusion.qml")
        m = ev.metrics
        outputs = {"OUTPUT_CONFUSION": confusion, "OUTPUT_REPORT": report, **report_outputs(ev.files),
                   "OUTPUT_MATRIX_PLOT": str(ev.files["matrix_png"]) if "matrix_png" in ev.files else None,
                   "OUTPUT_CLASSES_CSV": str(ev.files["classes_csv"]) if "classes_csv" in ev.files else None}
        outputs.update({key: number(m.get(f"macro_{name}")) for key, name in METRICS.items()})
        outputs.update({key: number(m.get(name)) for key, (name, _) in MORE_METRICS.items()})
        outputs.update({key: number(m.get(name)) for key, (name, _) in CLASS_OUTPUTS.items()})
        outputs.update({key: float("nan") for key in OBJECT_OUTPUTS})
        outputs.update(BEST_THRESHOLD=float("nan"), BEST_F1=float("nan"), BOUNDARY_F1=float("nan"))
        return outputs
