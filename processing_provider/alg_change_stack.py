"""change_stack: pre/post rasters (+ terrain) → one aligned model-input stack."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.stack import PRESETS, build_change_stack
from .base import LandslideAlgorithm, extent_or_none, layer_file, optional_number

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
        "the bands (B02…B12, VV, VH), as written by this plugin's composites; single-band files without one are "
        "named by their file name (B2.tif, slope.tif, dsm.tif → elevation).\n"
        "<b>Terrain rasters</b>: e.g. the output of 'Terrain derivatives' (elevation, slope, aspect, TPI …).\n"
        "<b>Grid</b>: the first pre-event raster, or the <i>reference raster</i>, optionally at another "
        "<i>resolution</i>; every other input is reprojected onto it (bilinear; nearest neighbour for aspect and "
        "classes), never just relabelled.\n"
        "<b>Preset</b>: the input settings of the Jølster study: setting1 = all post-event S2 bands, "
        "setting2 = pre_VV, post_VV, dNDVI (best there: F1 0.81), setting3 = pre_VV, post_VV, "
        "setting4 = post B02, B03, B04, B08 + dNDVI; s1_all = VV/VH before, after and change; s2; "
        "all = s1_all + elevation, slope, dNDVI (the global study's 'all', without its layover/climate layers). "
        "Choose 'custom' and list bands (comma-separated) to build your own.\n"
        "<b>Output</b>: Float32 GeoTIFF, nodata where any input is nodata (clouds, edges)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers("PRE", "Pre-event rasters", QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterMultipleLayers("POST", "Post-event rasters", QgsProcessing.TypeRaster,
                                                               optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers("TERRAIN", "Terrain rasters (slope, elevation …)",
                                                               QgsProcessing.TypeRaster, optional=True))
        self.addParameter(self.enum_parameter("PRESET", "Band preset", PRESET_NAMES, default="setting2",
                                              keys=list(PRESETS) + ["custom"]))
        self.addParameter(QgsProcessingParameterString("BANDS", "Custom band list (with preset 'custom')",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        advanced = [
            QgsProcessingParameterRasterLayer("REFERENCE", "Reference grid raster (empty = the first pre-event "
                                              "raster)", optional=True),
            *self.output_grid_parameters(None, "reference CRS units; empty = the reference's"),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Change stack"))

    def compute(self, parameters, context, feedback, progress):
        pre = self.parameterAsLayerList(parameters, "PRE", context)
        if not pre:
            raise QgsProcessingException("Give at least one pre-event raster: it defines the output grid.")
        preset = PRESET_NAMES[self.enum_index(parameters, "PRESET", context)]
        bands = self.parameterAsString(parameters, "BANDS", context) if preset == CUSTOM else preset
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context) if parameters.get("REFERENCE") \
            else None
        grid_layer = reference or pre[0]
        build_change_stack(
            [layer_file(x, "pre-event")[0] for x in pre],
            [layer_file(x, "post-event")[0] for x in self.parameterAsLayerList(parameters, "POST", context)],
            out,
            bands,
            terrain=[layer_file(x, "terrain")[0] for x in self.parameterAsLayerList(parameters, "TERRAIN", context)],
            extent=extent_or_none(self, parameters, "EXTENT", context, grid_layer.crs()),
            progress=progress,
            reference=layer_file(reference, "reference grid")[0] if reference else None,
            resolution=optional_number(parameters, "RESOLUTION"),
        )
        self.style_output(context, out, None)
        return {"OUTPUT": out}
