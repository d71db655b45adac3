"""pixel_baseline: CART / Random Forest pixel classifier on the chips (the studies' GEE baseline)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import LandslideAlgorithm, layer_file

MODELS = ["random_forest", "cart"]
MODEL_LABELS = ["Random Forest", "CART (one decision tree; as GEE smile.CART)"]


class PixelBaselineAlgorithm(LandslideAlgorithm):
    _id = "pixel_baseline"
    _display_name = "Pixel classifier baseline (Random Forest / CART)"
    _group = "Training"
    _group_id = "training"
    _help = (
        "Trains a classic pixel-by-pixel classifier on the same chips as the networks: each pixel is classified "
        "from its own band values only, without looking at its neighbours. This is the baseline of the studies "
        "(Google Earth Engine CART); comparing it with a network shows what spatial context adds.\n\n"
        "The decision threshold is chosen on the validation chips (maximum F1), as for networks.\n"
        "<b>Output</b>: a model package (.lmpkg) that 'Map landslides with a model' runs like any other; the trees "
        "are stored as plain number tables, never as executable pickles.\n"
        "<b>Map a raster now</b> (optional): give a change stack with the same bands to also write the landslide "
        "mask (and probability) right away."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_chip_inputs(landslide_classes=False)
        self.addParameter(self.enum_parameter("MODEL", "Classifier", MODEL_LABELS, default=0, keys=MODELS))
        self.addParameter(QgsProcessingParameterNumber("TREES", "Trees (Random Forest)", defaultValue=50,
                                                       minValue=1))
        advanced = [
            QgsProcessingParameterNumber("MAX_DEPTH", "Maximum tree depth (0 = unlimited)", defaultValue=16,
                                         minValue=0),
            QgsProcessingParameterNumber("MAX_PIXELS", "Training pixels sampled from the chips",
                                         defaultValue=200000, minValue=100),
            QgsProcessingParameterBoolean("BALANCED", "Weigh the classes by their frequency", defaultValue=False),
            QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model package",
                                                                "Landslide Mapper package (*.lmpkg)"))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Change stack to map now", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MASK", "Landslide mask", optional=True,
                                                                  createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_PROBABILITY", "Landslide probability",
                                                                  optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("F1", "Validation F1"))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD", "Decision threshold"))

    def compute(self, parameters, context, feedback, progress):
        from qgis.core import QgsProcessingUtils

        from ..core.baseline import BaselineConfig, train_pixel_baseline
        from ..common.errors import InputError

        depth = self.parameterAsInt(parameters, "MAX_DEPTH", context)
        config = BaselineConfig(
            model=MODELS[self.enum_index(parameters, "MODEL", context)],
            n_trees=self.parameterAsInt(parameters, "TREES", context),
            max_depth=depth or None,
            max_pixels=self.parameterAsInt(parameters, "MAX_PIXELS", context),
            balanced=self.parameterAsBool(parameters, "BALANCED", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
        )
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context) if parameters.get("INPUT") else None
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT_MASK", context) or None
        prob = self.parameterAsOutputLayer(parameters, "OUTPUT_PROBABILITY", context) or None
        if (mask or prob) and layer is None:
            raise InputError("A mask or probability output needs a change stack to map (the 'Change stack to map "
                             "now' input).")
        raster_path = layer_file(layer, "change stack")[0] if layer is not None else None
        if raster_path and not prob:
            prob = QgsProcessingUtils.generateTempFilename("baseline_probability.tif")
        result = train_pixel_baseline(
            self.parameterAsFile(parameters, "CHIPS", context),
            self.parameterAsFileOutput(parameters, "OUTPUT", context),
            config,
            validation_chips=self.parameterAsFile(parameters, "VALIDATION_CHIPS", context) or None,
            progress=progress,
            map_raster=raster_path, out_probability=prob, out_mask=mask,
        )
        outputs = {"OUTPUT": str(result.package), "F1": result.validation["f1"] or 0.0,
                   "THRESHOLD": result.threshold}
        if raster_path:
            outputs["OUTPUT_PROBABILITY"] = prob
            self.style_output(context, prob, "probability.qml")
            if mask:
                outputs["OUTPUT_MASK"] = mask
                self.style_output(context, mask, "mask.qml")
        return outputs
