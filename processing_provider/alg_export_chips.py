"""export_chips: stack + landslide labels → training chips with a spatially blocked split."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.chips import export_chips
from .base import LandslideAlgorithm, extent_or_none, layer_file

FORMATS = ["Native (GeoTIFF chips + index.csv + stats.json)"]


class ExportChipsAlgorithm(LandslideAlgorithm):
    _id = "export_chips"
    _display_name = "Export training chips"
    _group = "Training"
    _group_id = "training"
    _help = (
        "Cuts the change stack and the mapped landslides into small square chips for training.\n\n"
        "<b>Labels</b>: landslide polygons (features whose class field is > 0 are landslides) or a label raster "
        "(values > 0 are landslides). Everything else inside the stack counts as 'no landslide', so map all "
        "landslides of the area you export (use the extent to stay inside the mapped area).\n"
        "<b>Tile size / stride</b>: chip side and step in pixels (the Jølster study used 128 and 64).\n"
        "<b>Validation</b>: whole blocks of the map (block size in pixels) are held out for validation, so "
        "validation chips never share pixels with training chips and the score is honest.\n"
        "<b>Output folder</b>: chips, index.csv (one row per chip), stats.json (band statistics used to "
        "normalise inputs; nodata excluded) and chips.json."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Change stack"))
        self.addParameter(QgsProcessingParameterMapLayer("LABELS", "Landslide labels (polygons or raster)",
                                                         types=[QgsProcessing.TypeVectorPolygon,
                                                                QgsProcessing.TypeRaster]))
        self.addParameter(QgsProcessingParameterString("CLASS_FIELD", "Class field (polygons)", defaultValue="class"))
        self.addParameter(QgsProcessingParameterNumber("TILE_SIZE", "Tile size (pixels)", defaultValue=128,
                                                       minValue=16))
        self.addParameter(QgsProcessingParameterNumber("STRIDE", "Stride (pixels)", defaultValue=64, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("VALIDATION_FRACTION", "Fraction of blocks for validation",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.2,
                                                       minValue=0.0, maxValue=0.9))
        self.addParameter(QgsProcessingParameterNumber("SPLIT_BLOCK", "Split block size (pixels)", defaultValue=512,
                                                       minValue=16))
        self.addParameter(QgsProcessingParameterNumber("MIN_VALID", "Minimum valid-data fraction per chip",
                                                       QgsProcessingParameterNumber.Double, defaultValue=0.5,
                                                       minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterEnum("FORMAT", "Chip format", options=FORMATS, defaultValue=0))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Chip folder"))
        self.addOutput(QgsProcessingOutputNumber("TRAIN_CHIPS", "Training chips"))
        self.addOutput(QgsProcessingOutputNumber("VALIDATION_CHIPS", "Validation chips"))

    def compute(self, parameters, context, feedback, progress):
        stack = self.parameterAsRasterLayer(parameters, "INPUT", context)
        stack_path, _ = layer_file(stack, "change stack")
        labels_path, labels_layer = layer_file(self.parameterAsLayer(parameters, "LABELS", context), "label")
        folder = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        result = export_chips(
            stack_path, labels_path, folder,
            class_field=self.parameterAsString(parameters, "CLASS_FIELD", context) or "class",
            label_layer=labels_layer,
            tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
            stride=self.parameterAsInt(parameters, "STRIDE", context),
            extent=extent_or_none(self, parameters, "EXTENT", context, stack.crs()),
            validation_fraction=self.parameterAsDouble(parameters, "VALIDATION_FRACTION", context),
            split_block=self.parameterAsInt(parameters, "SPLIT_BLOCK", context),
            min_valid_fraction=self.parameterAsDouble(parameters, "MIN_VALID", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            progress=progress,
        )
        return {"OUTPUT_FOLDER": str(result.folder), "TRAIN_CHIPS": result.counts["train"]["chips"],
                "VALIDATION_CHIPS": result.counts["validation"]["chips"]}
