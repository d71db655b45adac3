"""export_chips: stack + landslide labels → training chips with a spatially blocked split."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDistance,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..core.chips import LabelOptions, Sampling, SplitOptions, export_chips
from .base import LandslideAlgorithm, extent_or_none, layer_file

# Option indexes are API (batch files, models): append new options, never reorder.
FORMATS = ["Native (GeoTIFF chips + index.csv + stats.json)", "ArcGIS Classified Tiles"]
LAYOUTS = ["native", "arcgis"]
SAMPLINGS = ["Regular grid (tile size and stride)", "Random positions (number of chips)",
             "Positive-biased random (share of chips with landslides)"]
MODES = ["grid", "random", "positive"]


class ExportChipsAlgorithm(LandslideAlgorithm):
    _id = "export_chips"
    _display_name = "Export training chips"
    _group = "Training"
    _group_id = "training"
    _help = (
        "Cuts the change stack and the mapped landslides into small square chips for training.\n\n"
        "<b>Labels</b>: polygons in any CRS (reprojected to the stack) with a class field — numbers (1, 2 … ; 0 or "
        "less = not a landslide) or texts (each text is a class) — or a raster of class values. <b>Landslide "
        "classes</b> lists the class values or names that are landslides (e.g. <i>2</i> or <i>debris flow, "
        "rockfall</i>); empty = every class. Other classes are learnt as background.\n"
        "<b>Multi-class</b>: the label chips keep every class value, and the export records the class table "
        "(values, names, colours; a label raster's own class names and colour table are kept), so 'Train' with "
        "task multiclass learns bedrock, wetlands, ravines … at once; ArcGIS Classified Tiles list every class.\n"
        "<b>Labelled region</b> (optional polygons): the area you digitised. Ground outside it is 'unknown' "
        "and ignored in training, not taken as 'no landslide'. Without it, everything inside the stack that is "
        "not a landslide polygon counts as background, so map every landslide of the exported area.\n"
        "<b>Sampling</b>: a regular grid of tiles every <i>stride</i> pixels (the Jølster study: 128 px tiles, "
        "stride 64); a number of random positions; or positive-biased random positions where a share of the "
        "chips holds at least the given number of landslide pixels (the global ensemble study: random crops "
        "holding ≥ 1 landslide pixel). Chips with less than the minimum share of valid, labelled pixels are "
        "skipped. Rotations and flips are applied during training, not exported as copies.\n"
        "<b>Split</b>: whole blocks of the map (block size in pixels, or in map units when set), or the polygons "
        "of a split-region layer (a field 'split' = train / validation / test fixes their split; otherwise "
        "regions are drawn at random), are held out for validation (and test). A chip that would reach into "
        "two splits is not cut, so no pixel is shared between splits and the scores are honest. The log reports "
        "chips, labelled pixels and landslide pixels per split.\n"
        "<b>Format</b>: native (GeoTIFF chips, index.csv with split, bounds and landslide share per chip, "
        "stats.json with per-band mean/std/min/max/2–98 % percentiles of the training chips, nodata excluded — "
        "carried into the model package) or ArcGIS Pro 'Classified Tiles' (images/, labels/, .emd, map.txt, "
        "statistics and world files, readable by ArcGIS and by the Train algorithm; ArcGIS has no 'unknown' label, "
        "so only chips fully inside the labelled region are written).\n"
        "<b>Preview</b>: preview.png in the chip folder shows a few chips with their labels."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Change stack"))
        self.addParameter(QgsProcessingParameterMapLayer("LABELS", "Landslide labels (polygons or raster)",
                                                         types=[QgsProcessing.TypeVectorPolygon,
                                                                QgsProcessing.TypeRaster]))
        self.addParameter(QgsProcessingParameterString("CLASS_FIELD", "Class field (polygons)", defaultValue="class"))
        self.addParameter(QgsProcessingParameterString("LANDSLIDE_CLASSES", "Landslide classes (values or names, "
                                                       "comma-separated; empty = every class)", optional=True))
        self.addParameter(QgsProcessingParameterVectorLayer("REGION", "Labelled region (area digitised)",
                                                            [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterNumber("TILE_SIZE", "Tile size (pixels)", defaultValue=128,
                                                       minValue=16))
        self.addParameter(QgsProcessingParameterNumber("STRIDE", "Stride (pixels, grid sampling)", defaultValue=64,
                                                       minValue=1))
        self.addParameter(self.enum_parameter("SAMPLING", "Sampling", SAMPLINGS, default=0, keys=MODES))
        self.addParameter(QgsProcessingParameterNumber("N_CHIPS", "Number of chips (random sampling)",
                                                       defaultValue=1000, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("POSITIVE_FRACTION", "Share of chips with landslides "
                                                       "(positive-biased sampling)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.5,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber("VALIDATION_FRACTION", "Fraction of blocks for validation",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.2,
                                                       minValue=0.0, maxValue=0.9))
        self.addParameter(QgsProcessingParameterNumber("SPLIT_BLOCK", "Split block size (pixels)", defaultValue=512,
                                                       minValue=16))
        self.addParameter(self.enum_parameter("FORMAT", "Chip format", FORMATS, default=0, keys=LAYOUTS))
        advanced = [
            QgsProcessingParameterNumber("MIN_POSITIVE_PIXELS", "Landslide pixels that make a chip 'positive'",
                                         defaultValue=1, minValue=1),
            QgsProcessingParameterNumber("TEST_FRACTION", "Fraction of blocks for a test split",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0,
                                         maxValue=0.9),
            QgsProcessingParameterDistance("SPLIT_BLOCK_SIZE", "Split block size in map units (0 = use pixels)",
                                           defaultValue=0.0, parentParameterName="INPUT", minValue=0.0),
            QgsProcessingParameterVectorLayer("SPLIT_REGIONS", "Split regions (polygons; replace blocks)",
                                              [QgsProcessing.TypeVectorPolygon], optional=True),
            QgsProcessingParameterString("SPLIT_FIELD", "Split field of the regions (train/validation/test)",
                                         defaultValue="split", optional=True),
            QgsProcessingParameterNumber("MIN_VALID", "Minimum valid, labelled fraction per chip",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.5, minValue=0.0,
                                         maxValue=1.0),
            QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0),
            QgsProcessingParameterBoolean("PREVIEW", "Write preview.png", defaultValue=True),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Chip folder"))
        self.addOutput(QgsProcessingOutputNumber("TRAIN_CHIPS", "Training chips"))
        self.addOutput(QgsProcessingOutputNumber("VALIDATION_CHIPS", "Validation chips"))
        self.addOutput(QgsProcessingOutputNumber("TEST_CHIPS", "Test chips"))
        self.addOutput(QgsProcessingOutputFile("PREVIEW_PNG", "Chip preview (PNG)"))

    def folder_kinds(self):
        from ..core.chips import CHIP_FOLDER

        return {"OUTPUT_FOLDER": CHIP_FOLDER}

    def compute(self, parameters, context, feedback, progress):
        stack = self.parameterAsRasterLayer(parameters, "INPUT", context)
        stack_path, _ = layer_file(stack, "change stack")
        labels_path, labels_layer = layer_file(self.parameterAsLayer(parameters, "LABELS", context), "label")
        region_path = region_layer = split_path = split_layer = None
        if parameters.get("REGION"):
            region_path, region_layer = layer_file(self.parameterAsVectorLayer(parameters, "REGION", context),
                                                   "labelled region")
        if parameters.get("SPLIT_REGIONS"):
            split_path, split_layer = layer_file(self.parameterAsVectorLayer(parameters, "SPLIT_REGIONS", context),
                                                 "split region")
        block_size = self.parameterAsDouble(parameters, "SPLIT_BLOCK_SIZE", context)
        def number(name):
            return self.parameterAsDouble(parameters, name, context)

        def whole(name):
            return self.parameterAsInt(parameters, name, context)

        sampling = Sampling(mode=MODES[self.enum_index(parameters, "SAMPLING", context)], stride=whole("STRIDE"),
                            n_chips=whole("N_CHIPS"), positive_fraction=number("POSITIVE_FRACTION"),
                            min_positive_pixels=whole("MIN_POSITIVE_PIXELS"), min_valid_fraction=number("MIN_VALID"))
        splits = SplitOptions(validation_fraction=number("VALIDATION_FRACTION"), test_fraction=number("TEST_FRACTION"),
                              block=None if block_size > 0 else whole("SPLIT_BLOCK"),
                              block_size=block_size if block_size > 0 else None, regions_path=split_path,
                              regions_layer=split_layer,
                              field=self.parameterAsString(parameters, "SPLIT_FIELD", context) or None)
        text = lambda name: self.parameterAsString(parameters, name, context) or None  # noqa: E731
        labels = LabelOptions(class_field=text("CLASS_FIELD") or "class", layer=labels_layer,
                              landslide_classes=text("LANDSLIDE_CLASSES"), region_path=region_path,
                              region_layer=region_layer)
        result = export_chips(
            stack_path, labels_path, self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
            tile_size=whole("TILE_SIZE"), sampling=sampling, splits=splits, labels=labels,
            extent=extent_or_none(self, parameters, "EXTENT", context, stack.crs()),
            layout=LAYOUTS[self.enum_index(parameters, "FORMAT", context)],
            preview=self.parameterAsBoolean(parameters, "PREVIEW", context), seed=whole("SEED"), progress=progress,
        )
        return {"OUTPUT_FOLDER": str(result.folder), "TRAIN_CHIPS": result.counts["train"]["chips"],
                "VALIDATION_CHIPS": result.counts["validation"]["chips"], "TEST_CHIPS": result.counts["test"]["chips"],
                "PREVIEW_PNG": str(result.preview) if result.preview else None}
