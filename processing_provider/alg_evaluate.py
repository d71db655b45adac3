"""evaluate: prediction + truth → confusion map (TP/FP/FN/TN) and metrics."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.metrics import evaluate_prediction
from .base import LandslideAlgorithm, extent_or_none, layer_file

METRICS = {"PRECISION": "precision", "RECALL": "recall", "F1": "f1", "MCC": "mcc", "IOU": "iou"}
LABELS = {"PRECISION": "Precision", "RECALL": "Recall", "F1": "F1 score", "MCC": "Matthews correlation (MCC)",
          "IOU": "Intersection over union (IoU)"}


class EvaluateAlgorithm(LandslideAlgorithm):
    _id = "evaluate"
    _display_name = "Evaluate landslide map"
    _group = "Mapping and evaluation"
    _group_id = "mapping"
    _help = (
        "Checks a landslide map against mapped landslides (truth).\n\n"
        "<b>Prediction</b>: a mask (1 = landslide) or a probability raster (cut at the threshold).\n"
        "<b>Truth</b>: landslide polygons (class field > 0; any CRS, reprojected) or a label raster.\n"
        "<b>Confusion map</b>: green = landslide found (true positive), red = false alarm (false positive), "
        "blue = landslide missed (false negative), grey = correctly empty (true negative).\n"
        "<b>Metrics</b>: precision = share of mapped landslide pixels that are real; recall = share of real "
        "landslide pixels that were mapped; F1 balances both; MCC also accounts for correct negatives "
        "(−1…1); IoU = overlap / union. Written as a JSON report and returned as numbers for models and batch runs. "
        "Nodata in either input is left out."
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
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_CONFUSION", "Confusion map"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Metrics report",
                                                                "JSON files (*.json)", optional=True,
                                                                createByDefault=True))
        for key, label in LABELS.items():
            self.addOutput(QgsProcessingOutputNumber(key, label))

    def compute(self, parameters, context, feedback, progress):
        pred = self.parameterAsRasterLayer(parameters, "PREDICTION", context)
        pred_path, _ = layer_file(pred, "prediction")
        truth_path, truth_layer = layer_file(self.parameterAsLayer(parameters, "TRUTH", context), "truth")
        confusion = self.parameterAsOutputLayer(parameters, "OUTPUT_CONFUSION", context)
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) or None
        ev = evaluate_prediction(
            pred_path, truth_path, confusion, report,
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
            truth_field=self.parameterAsString(parameters, "TRUTH_FIELD", context) or "class",
            truth_layer=truth_layer,
            extent=extent_or_none(self, parameters, "EXTENT", context, pred.crs()),
            progress=progress,
        )
        self.style_output(context, confusion, "confusion.qml")
        outputs = {"OUTPUT_CONFUSION": confusion, "OUTPUT_REPORT": report}
        # Undefined scores (e.g. no landslide anywhere) are reported as NaN rather than a misleading 0.
        outputs.update({key: (ev.metrics[name] if ev.metrics[name] is not None else float("nan"))
                        for key, name in METRICS.items()})
        return outputs
