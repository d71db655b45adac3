"""compare_predictions: two landslide maps (e.g. single best model vs ensemble) against one truth → comparison map."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.metrics import compare_predictions
from .alg_evaluate import LABELS, METRICS, number, optional_layer_file
from .base import LandslideAlgorithm, extent_or_none, layer_file


class ComparePredictionsAlgorithm(LandslideAlgorithm):
    _id = "compare_predictions"
    _display_name = "Compare two landslide maps"
    _group = "Mapping and evaluation"
    _group_id = "mapping"
    _help = (
        "Shows where two landslide maps of the same event agree and differ against the truth, e.g. the single best "
        "model (A) against an ensemble (B).\n\n"
        "<b>Predictions A and B</b>: masks (1 = landslide) or probability rasters (landslide where p ≥ their "
        "threshold). B is read on A's grid. Only pixels both maps and the truth cover (and inside the optional "
        "evaluation area) count, so both are scored on the same ground.\n"
        "<b>Comparison map</b>, 7 colours: both found the landslide (green), only A found it, only B found it, both "
        "missed it (blue), both false alarm (red), false alarm of A only, of B only. Where both are right that "
        "there is no landslide stays transparent (value 8; 0 = nodata).\n"
        "<b>Report</b>: JSON and an HTML page with both maps' precision, recall, F1, MCC, IoU, bias, kappa, the "
        "pixel count of each comparison class, a quick-look of the map and a performance diagram with one point "
        "per map. The scores of A and B are also outputs for models and batch runs (NaN when undefined)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("PREDICTION_A", "Prediction A (e.g. single model)"))
        self.addParameter(QgsProcessingParameterString("NAME_A", "Name of A (empty = layer name)", optional=True))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD_A", "Threshold of A (probability input)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.5,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterRasterLayer("PREDICTION_B", "Prediction B (e.g. ensemble)"))
        self.addParameter(QgsProcessingParameterString("NAME_B", "Name of B (empty = layer name)", optional=True))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD_B", "Threshold of B (probability input)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.5,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterMapLayer("TRUTH", "Truth (landslide polygons or label raster)",
                                                         types=[QgsProcessing.TypeVectorPolygon,
                                                                QgsProcessing.TypeRaster]))
        self.addParameter(QgsProcessingParameterString("TRUTH_FIELD", "Class field (polygons)", defaultValue="class"))
        self.addParameter(QgsProcessingParameterMapLayer("EVALUATION_AREA", "Evaluation area (optional)",
                                                         optional=True, types=[QgsProcessing.TypeVectorPolygon,
                                                                               QgsProcessing.TypeRaster]))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_COMPARISON", "Comparison map"))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Comparison report",
                                                                "JSON files (*.json)", optional=True,
                                                                createByDefault=True))
        for side in ("A", "B"):
            for key, label in LABELS.items():
                self.addOutput(QgsProcessingOutputNumber(f"{key}_{side}", f"{label} of {side}"))
        self.addOutput(QgsProcessingOutputHtml("OUTPUT_HTML", "Comparison report (HTML)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_PERFORMANCE_DIAGRAM", "Performance diagram (PNG)"))

    def side_files(self, parameter, path):
        from ..core.metrics.reports import side_files

        return side_files(path) if parameter == "OUTPUT_REPORT" else []

    def compute(self, parameters, context, feedback, progress):
        layers = [self.parameterAsRasterLayer(parameters, f"PREDICTION_{s}", context) for s in ("A", "B")]
        paths = [layer_file(layer, f"prediction {s}")[0] for layer, s in zip(layers, ("A", "B"))]
        names = [self.parameterAsString(parameters, f"NAME_{s}", context) or layer.name()
                 for layer, s in zip(layers, ("A", "B"))]
        from ..common.errors import InputError
        from .alg_evaluate import is_class_map

        for path, s in zip(paths, ("A", "B")):
            if is_class_map(path):
                raise InputError(f"Prediction '{path}' (PREDICTION_{s}) is a class map of a multi-class model; the "
                                 f"comparison map compares landslide maps (mask or probability). Evaluate each class "
                                 f"map with 'Evaluate' (per-class scores) instead.")
        truth_path, truth_layer = layer_file(self.parameterAsLayer(parameters, "TRUTH", context), "truth")
        area_path, area_layer = optional_layer_file(self, parameters, "EVALUATION_AREA", context, "evaluation area")
        out_map = self.parameterAsOutputLayer(parameters, "OUTPUT_COMPARISON", context)
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) or None
        result = compare_predictions(
            paths[0], paths[1], truth_path, out_map, report,
            names=tuple(names),
            thresholds=tuple(self.parameterAsDouble(parameters, f"THRESHOLD_{s}", context) for s in ("A", "B")),
            truth_field=self.parameterAsString(parameters, "TRUTH_FIELD", context) or "class",
            truth_layer=truth_layer,
            area_path=area_path,
            area_layer=area_layer,
            extent=extent_or_none(self, parameters, "EXTENT", context, layers[0].crs()),
            progress=progress,
        )
        self.style_output(context, out_map, "comparison.qml")
        outputs = {"OUTPUT_COMPARISON": out_map, "OUTPUT_REPORT": report,
                   "OUTPUT_HTML": str(result.files["html"]) if "html" in result.files else None,
                   "OUTPUT_PERFORMANCE_DIAGRAM": (str(result.files["performance_diagram"])
                                                  if "performance_diagram" in result.files else None)}
        for side, metrics in zip(("A", "B"), result.metrics):
            outputs.update({f"{key}_{side}": number(metrics[name]) for key, name in METRICS.items()})
        return outputs
