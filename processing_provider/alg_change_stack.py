"""change_stack: pre/post rasters (+ terrain) → one aligned model-input stack."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.stack import PRESETS, build_change_stack
from .base import LandslideAlgorithm, extent_or_none, layer_file

CUSTOM = "custom (BANDS list)"
PRESET_NAMES = list(PRESETS) + [CUSTOM]


class ChangeStackAlgorithm(LandslideAlgorithm):
    _id = "change_stack"
    _display_name = "Build change stack"
    _group = "Prepare inputs"
    _group_id = "prepare"
    _help = (
        "Builds the model input: one raster whose bands are named pre_/post_ bands and their changes "
        "(dNDVI = NDVI after − NDVI before, vegetation loss is negative; dVV/dVH = backscatter after − before, dB).\n\n"
        "<b>Pre-event / post-event rasters</b>: Sentinel-2 and/or Sentinel-1 rasters whose band descriptions name "
        "the bands (B02…B12, VV, VH), as written by this plugin's composites. The first pre-event raster defines "
        "the output grid; others are reprojected onto it.\n"
        "<b>Preset</b>: the input settings of the Jølster study: setting1 = all post-event S2 bands, "
        "setting2 = pre_VV, post_VV, dNDVI (best there: F1 0.81), setting3 = pre_VV, post_VV, "
        "setting4 = post B02, B03, B04, B08 + dNDVI; s1_all = VV/VH before, after and change; s2. "
        "Choose 'custom' and list bands (comma-separated) to build your own.\n"
        "<b>Output</b>: Float32 GeoTIFF, nodata where any input is nodata (clouds, edges)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers("PRE", "Pre-event rasters", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers("POST", "Post-event rasters", QgsProcessing.TypeRaster,
                                                               optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers("TERRAIN", "Terrain rasters (slope, elevation …)",
                                                               QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterEnum("PRESET", "Band preset", options=PRESET_NAMES,
                                                     defaultValue=PRESET_NAMES.index("setting2")))
        self.addParameter(QgsProcessingParameterString("BANDS", "Custom band list (with preset 'custom')",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Change stack"))

    def compute(self, parameters, context, feedback, progress):
        pre = self.parameterAsLayerList(parameters, "PRE", context)
        if not pre:
            raise QgsProcessingException("Give at least one pre-event raster: it defines the output grid.")
        preset = PRESET_NAMES[self.parameterAsEnum(parameters, "PRESET", context)]
        bands = self.parameterAsString(parameters, "BANDS", context) if preset == CUSTOM else preset
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        build_change_stack(
            [layer_file(x, "pre-event")[0] for x in pre],
            [layer_file(x, "post-event")[0] for x in self.parameterAsLayerList(parameters, "POST", context)],
            out,
            bands,
            terrain=[layer_file(x, "terrain")[0] for x in self.parameterAsLayerList(parameters, "TERRAIN", context)],
            extent=extent_or_none(self, parameters, "EXTENT", context, pre[0].crs()),
            progress=progress,
        )
        self.style_output(context, out, None)
        return {"OUTPUT": out}
