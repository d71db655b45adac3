"""predict: model package + stack → landslide probability and mask."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DEVICES, LandslideAlgorithm, extent_or_none, layer_file


class PredictAlgorithm(LandslideAlgorithm):
    _id = "predict"
    _display_name = "Map landslides with a model"
    _group = "Mapping and evaluation"
    _group_id = "mapping"
    _help = (
        "Runs a trained model package over a change stack and writes a landslide map.\n\n"
        "The stack must contain the bands the model was trained on (matched by name, e.g. pre_VV, post_VV, dNDVI; "
        "build it with 'Build change stack' using the same preset). The raster is processed in overlapping tiles "
        "whose predictions are blended smoothly, so no tile seams appear; memory use does not grow with the raster.\n"
        "<b>Probability</b>: 0–1 likelihood of landslide per pixel (nodata where the input has nodata, e.g. clouds).\n"
        "<b>Mask</b>: 1 = landslide where probability ≥ threshold (default: the threshold chosen on validation "
        "data when the model was trained).\nA CUDA GPU is used when present ('auto')."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("PACKAGE", "Model package (.lmpkg)", extension="lmpkg"))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Change stack"))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD", "Threshold (empty = the model's own)",
                                                       QgsProcessingParameterNumber.Double, optional=True,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0))
        advanced = [
            QgsProcessingParameterNumber("TILE_SIZE", "Tile size (pixels, multiple of 32; empty = the model's)",
                                         optional=True, minValue=32),
            QgsProcessingParameterNumber("OVERLAP", "Tile overlap (pixels; empty = the model's)", optional=True,
                                         minValue=0),
            QgsProcessingParameterNumber("BATCH_SIZE", "Tiles per batch", defaultValue=4, minValue=1),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_PROBABILITY", "Landslide probability"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MASK", "Landslide mask", optional=True,
                                                                  createByDefault=True))

    def compute(self, parameters, context, feedback, progress):
        from ..core.predict import sliding_window_predict
        from ..models.package import read_package

        package = read_package(self.parameterAsFile(parameters, "PACKAGE", context))
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        path, _ = layer_file(layer, "input stack")
        prob = self.parameterAsOutputLayer(parameters, "OUTPUT_PROBABILITY", context)
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT_MASK", context) or None

        def optional_number(name, cast):
            return cast(parameters[name]) if parameters.get(name) not in (None, "") else None

        result = sliding_window_predict(
            package, path, prob, mask,
            threshold=optional_number("THRESHOLD", float),
            extent=extent_or_none(self, parameters, "EXTENT", context, layer.crs()),
            tile_size=optional_number("TILE_SIZE", int),
            overlap=optional_number("OVERLAP", int),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
            progress=progress,
        )
        self.style_output(context, prob, "probability.qml")
        outputs = {"OUTPUT_PROBABILITY": prob, "THRESHOLD": result.threshold}
        if mask:
            self.style_output(context, mask, "mask.qml")
            outputs["OUTPUT_MASK"] = mask
        return outputs
