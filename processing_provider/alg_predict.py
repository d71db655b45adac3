"""predict: model package + stack → landslide probability, mask and polygons."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ..common.definitions import DEVICES, ENGINES, NORMALIZATIONS
from ..common.errors import InputError
from ..core.postprocess import MaskRules, PolygonOptions
from .base import LandslideAlgorithm, extent_or_none, layer_file, optional_number

NORMALIZATION_LABELS = ["the training statistics stored in the package",
                        "this raster's own statistics (other sensor level; haze or season)"]


def parse_band_mapping(text: str, n_rasters: int) -> dict[str, tuple[int, int]]:
    """'dNDVI=2:1, post_VV=1:3' → {'dNDVI': (1, 1), 'post_VV': (0, 3)} (raster numbers are 1-based for people)."""
    mapping = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            name, where = item.split("=")
            r, b = where.split(":")
            mapping[name.strip()] = (int(r) - 1, int(b))
        except ValueError:
            raise InputError(f"Band mapping '{item}' is not of the form band=raster:band, e.g. dNDVI=2:1.") from None
        if not 0 <= mapping[name.strip()][0] < n_rasters:
            raise InputError(f"Band mapping '{item}' names raster {r}, but only {n_rasters} raster(s) are given.")
    return mapping


class PredictAlgorithm(LandslideAlgorithm):
    _id = "predict"
    _display_name = "Map landslides with a model"
    _group = "Mapping and evaluation"
    _group_id = "mapping"
    _help = (
        "Runs a trained model package over a change stack and writes a landslide map.\n\n"
        "<b>Input</b>: the stack with the bands the model was trained on, found by band name (e.g. pre_VV, post_VV, "
        "dNDVI; build it with 'Build change stack' and the same preset). Bands may also come from further rasters "
        "('Other input rasters'), reprojected onto the first one's grid; a band mapping like 'dNDVI=2:1' (band 1 of "
        "raster 2) overrides the matching by name.\n"
        "The raster is processed in overlapping tiles whose predictions are blended smoothly, so no tile seams "
        "appear; memory use does not grow with the raster. A CUDA GPU is used when present ('auto').\n"
        "<b>Probability</b>: 0–1 likelihood of landslide per pixel, as a Cloud-Optimised GeoTIFF (nodata where the "
        "input has nodata, e.g. clouds).\n"
        "<b>Mask</b>: 1 = landslide where probability ≥ threshold (default: the threshold chosen on validation data "
        "when the model was trained), after the optional vetoes: flatter than a minimum slope, water (NDWI from "
        "B03/B08), clouds in a scene classification (SCL) layer, or inside exclusion zones.\n"
        "<b>Polygons</b>: one feature per landslide with area (m²), mean and max probability and max slope; pieces "
        "closer than the merge distance become one landslide (buffer-dissolve), and objects smaller than the "
        "minimum area are dropped (the thesis used 5 m and 5,000 m²).\n"
        "<b>Multi-class models</b> (trained with TASK multiclass, e.g. bedrock / wetland / ravines): the probability "
        "output holds one band per class (probability_&lt;class&gt;, ensembles and TTA average them), the mask "
        "output is the class map (the most probable class per pixel, paletted in the model's colours, class names "
        "as categories so the legend lists them), and polygons carry class and class_name fields; exclusion "
        "rules send vetoed pixels to background (only the classes in VETO_CLASSES when given, e.g. a minimum slope "
        "for landslides only), and CLASS_MIN_AREAS sets a minimum area per class. The threshold "
        "does not apply.\n"
        "<b>Large areas</b> (advanced): with a Dask scheduler address (DASK_SCHEDULER) the raster is predicted in "
        "strips on that cluster's workers, which read the inputs and write their strips beside the outputs (paths "
        "every worker sees); with WORKERS > 1 and no address, on that many local worker processes. The maps are "
        "identical to a run in this process. An interrupted run resumes from the strips already finished."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("PACKAGE", "Model package (.lmpkg)", extension="lmpkg"))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Change stack"))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD", "Threshold (empty = the model's own)",
                                                       QgsProcessingParameterNumber.Double, optional=True,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(self.enum_parameter("DEVICE", "Device", DEVICES, default=0))
        self.addParameter(QgsProcessingParameterNumber("MIN_AREA", "Minimum landslide area (m²)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.0,
                                                       minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber("MERGE_DISTANCE", "Merge pieces closer than (m)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.0,
                                                       minValue=0.0))
        advanced = [
            QgsProcessingParameterMultipleLayers("OTHER_INPUTS", "Other input rasters", QgsProcessing.TypeRaster,
                                                 optional=True),
            QgsProcessingParameterString("BAND_MAPPING", "Band mapping (band=raster:band, …)", optional=True),
            QgsProcessingParameterRasterLayer("SLOPE", "Slope raster (degrees)", optional=True),
            QgsProcessingParameterNumber("MIN_SLOPE", "Veto landslides flatter than (degrees)",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0),
            QgsProcessingParameterRasterLayer("WATER", "Sentinel-2 raster for a water veto (B03, B08)",
                                              optional=True),
            QgsProcessingParameterRasterLayer("SCL", "Scene classification (SCL) for a cloud veto", optional=True),
            QgsProcessingParameterMapLayer("EXCLUDE", "Exclusion zones (polygons or non-zero raster)", optional=True,
                                           types=[QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeRaster]),
            QgsProcessingParameterBoolean("TTA", "Test-time augmentation (flips; 4× slower)", defaultValue=False),
            self.enum_parameter("ENGINE", "Inference engine on the CPU", ENGINES, default=0),
            self.enum_parameter("NORMALIZATION", "Normalise inputs with", NORMALIZATION_LABELS, default=0,
                                keys=list(NORMALIZATIONS)),
            QgsProcessingParameterNumber("TILE_SIZE", "Largest tile size (pixels, multiple of 32; empty = the model's)",
                                         optional=True, minValue=32),
            QgsProcessingParameterNumber("OVERLAP", "Minimum tile overlap (pixels; empty = the model's)",
                                         optional=True, minValue=0),
            QgsProcessingParameterNumber("BATCH_SIZE", "Tiles per batch", defaultValue=4, minValue=1),
            QgsProcessingParameterString("CLASS_MIN_AREAS", "Minimum area per class (multi-class model; e.g. "
                                         "'bedrock=5000, wetland=2000' in m²; others: the minimum area)",
                                         optional=True),
            QgsProcessingParameterString("VETO_CLASSES", "Classes the exclusion rules apply to (multi-class model; "
                                         "names or values; empty = all but background)", optional=True),
            QgsProcessingParameterString("DASK_SCHEDULER", "Dask scheduler address (e.g. tcp://host:8786; empty = "
                                         "this computer)", optional=True),
            QgsProcessingParameterNumber("WORKERS", "Local worker processes (without a scheduler; 1 = in this "
                                         "process)", defaultValue=1, minValue=1),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_PROBABILITY", "Landslide probability"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MASK", "Landslide mask", optional=True,
                                                                  createByDefault=True))
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT_POLYGONS", "Landslide polygons",
                                                                  QgsProcessing.TypeVectorPolygon, optional=True,
                                                                  createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD", "Threshold used"))
        self.addOutput(QgsProcessingOutputNumber("POLYGON_COUNT", "Number of landslide polygons"))

    def compute(self, parameters, context, feedback, progress):
        from ..core.predict import PredictOptions, PredictOutputs, predict_map
        from ..models.package import read_package

        package = read_package(self.parameterAsFile(parameters, "PACKAGE", context))
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        rasters = [layer_file(layer, "input stack")[0]]
        rasters += [layer_file(x, "other input")[0]
                    for x in self.parameterAsLayerList(parameters, "OTHER_INPUTS", context)]
        mapping = parse_band_mapping(self.parameterAsString(parameters, "BAND_MAPPING", context), len(rasters))

        def optional_raster(name, what):
            lyr = self.parameterAsRasterLayer(parameters, name, context) if parameters.get(name) else None
            return layer_file(lyr, what)[0] if lyr is not None else None

        exclude, exclude_layer = (layer_file(self.parameterAsLayer(parameters, "EXCLUDE", context), "exclusion")
                                  if parameters.get("EXCLUDE") else (None, None))
        slope = optional_raster("SLOPE", "slope")
        rules = MaskRules(slope_raster=slope, min_slope=self.parameterAsDouble(parameters, "MIN_SLOPE", context),
                          water_raster=optional_raster("WATER", "water"), scl_raster=optional_raster("SCL", "SCL"),
                          exclude=exclude, exclude_layer=exclude_layer)
        if rules.min_slope > 0 and not slope:
            raise InputError("A minimum slope needs a slope raster (SLOPE).")
        prob = self.parameterAsOutputLayer(parameters, "OUTPUT_PROBABILITY", context)
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT_MASK", context) or None
        polygons = self.parameterAsOutputLayer(parameters, "OUTPUT_POLYGONS", context) or None
        options = PredictOptions(
            band_mapping=mapping,
            threshold=optional_number(parameters, "THRESHOLD", float),
            extent=extent_or_none(self, parameters, "EXTENT", context, layer.crs()),
            tile_size=optional_number(parameters, "TILE_SIZE", int),
            overlap=optional_number(parameters, "OVERLAP", int),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            dask_scheduler=self.parameterAsString(parameters, "DASK_SCHEDULER", context).strip(),
            workers=self.parameterAsInt(parameters, "WORKERS", context),
            device=DEVICES[self.enum_index(parameters, "DEVICE", context)],
            tta=self.parameterAsBool(parameters, "TTA", context),
            engine=ENGINES[self.enum_index(parameters, "ENGINE", context)],
            normalization=NORMALIZATIONS[self.enum_index(parameters, "NORMALIZATION", context)],
            mask_rules=rules,
            polygon_options=PolygonOptions(min_area_m2=self.parameterAsDouble(parameters, "MIN_AREA", context),
                                           merge_distance=self.parameterAsDouble(parameters, "MERGE_DISTANCE",
                                                                                 context),
                                           slope_raster=slope),
        )
        if package.is_multiclass:
            from ..core.predict.class_polygons import parse_class_areas, parse_class_list

            floor = options.polygon_options.min_area_m2
            options.class_min_area = parse_class_areas(
                self.parameterAsString(parameters, "CLASS_MIN_AREAS", context), package.classes, floor)
            options.veto_classes = parse_class_list(self.parameterAsString(parameters, "VETO_CLASSES", context),
                                                    package.classes)
            return self._predict_classes(package, rasters, PredictOutputs(prob, mask, polygons), options, context,
                                         progress)
        result = predict_map(package, rasters, PredictOutputs(prob, mask, polygons), options, progress)
        self.style_output(context, prob, "probability.qml")
        outputs = {"OUTPUT_PROBABILITY": prob, "THRESHOLD": result.threshold}
        if mask:
            self.style_output(context, mask, "mask.qml")
            outputs["OUTPUT_MASK"] = mask
        if polygons:
            self.style_output(context, polygons, "predicted_polygons.qml")
            outputs["OUTPUT_POLYGONS"] = polygons
            outputs["POLYGON_COUNT"] = result.n_polygons
        return outputs

    def _predict_classes(self, package, rasters, outputs, options, context, progress) -> dict:
        """A multi-class package: class probabilities (one band per class), class map and class polygons, styled
        with the package's class names and colours."""
        from ..core.predict import predict_map
        from .styles import ClassStylePostProcessor

        result = predict_map(package, rasters, outputs, options, progress)
        result_outputs = {"OUTPUT_PROBABILITY": str(outputs.probability), "THRESHOLD": float("nan")}
        if outputs.mask:
            self.style_output(context, str(outputs.mask), ClassStylePostProcessor(package.classes))
            result_outputs["OUTPUT_MASK"] = str(outputs.mask)
        if outputs.polygons:
            self.style_output(context, str(outputs.polygons), ClassStylePostProcessor(package.classes))
            result_outputs["OUTPUT_POLYGONS"] = str(outputs.polygons)
            result_outputs["POLYGON_COUNT"] = result.n_polygons
        return result_outputs
