"""terrain: DEM → slope, aspect, hillshade, TPI, roughness and the thesis's geology bands (metres, also for DEMs in
degrees)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.terrain import RELIEF_PIXELS, VALLEY_DEPTH_RADIUS, terrain_derivatives
from .base import LandslideAlgorithm, extent_with_crs, layer_file


class TerrainAlgorithm(LandslideAlgorithm):
    _id = "terrain"
    _display_name = "Terrain derivatives"
    _group = "Prepare inputs"
    _group_id = "prepare"
    _help = (
        "Derives the terrain bands landslide models use from a DEM, in one raster on the DEM's grid:\n"
        "<b>elevation</b> (m), <b>slope</b> (degrees), <b>aspect</b> (degrees clockwise from north that the slope "
        "faces; −1 on flat ground), <b>hillshade</b> (0–255, sun from the given azimuth and altitude), <b>TPI</b> "
        "(topographic position: elevation minus the mean elevation within the radius; negative in valleys and "
        "gullies, positive on ridges) and <b>roughness</b> (largest height difference among the 3×3 neighbours).\n\n"
        "Also the terrain bands of the geological-mapping thesis (bedrock outcrops, wetlands, ravines), over "
        "neighbourhoods counted in pixels as there: <b>relative_relief_12</b> (highest minus lowest elevation within "
        "12 pixels; the number follows <i>Relative relief neighbourhood</i>), <b>tpi_3</b> and <b>tpi_9</b> "
        "(elevation minus the mean of the neighbours within 3 and 9 pixels), <b>slope_sum</b> (sum of the slopes "
        "within 12 pixels, in degrees; nodata and cells beyond the DEM count as the mean of the others) and "
        "<b>valley_depth</b> (m). On a DEM in degrees a neighbourhood of N pixels is N north–south pixels in metres "
        "in every direction, so it is round on the ground.\n"
        "<b>Valley depth</b> is SAGA's 'Valley Depth' (ridge level interpolated between ridge cells, minus the "
        "elevation) <i>approximated</i>, because SAGA's needs the whole DEM at once: here the ridge level is the "
        "DEM's morphological closing by a disc of <i>Valley depth radius</i> metres (beyond 15 pixels, 16 nested "
        "rectangles inscribed in it), the highest level up to which the disc cannot enter a valley. In valleys "
        "narrower than twice the radius it is the level of the lower "
        "bounding crest (exactly SAGA's depth between crests of equal height); it is never negative and 0 on "
        "ridges and planes; wider valleys are measured only down to where they are twice the radius wide.\n\n"
        "Distances are in metres whatever the DEM's CRS: for DEMs in degrees (EPSG:4326, e.g. 30 m SRTM/AW3D) the "
        "pixel size is converted per row on the ellipsoid, so slopes are right at any latitude. Add the result to "
        "'Build change stack' as a terrain raster: it is resampled onto the stack's grid (aspect by nearest "
        "neighbour, so 350° and 10° never average to 180°). Its presets 'terrain' (elevation, slope, "
        "relative_relief_12, tpi_3, tpi_9, valley_depth) and 's2_terrain' (post_ B02, B03, B04, B08, NDVI of one "
        "Sentinel-2 composite + the same) build bedrock and ravine model inputs: give this raster as terrain raster "
        "and as pre-event raster (it sets the grid), and for 's2_terrain' the composite as post-event raster."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "DEM"))
        self.addParameter(QgsProcessingParameterNumber("TPI_RADIUS", "TPI radius (m)",
                                                       QgsProcessingParameterNumber.Double, defaultValue=100.0,
                                                       minValue=0.0))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent", optional=True))
        advanced = [
            QgsProcessingParameterNumber("Z_FACTOR", "Z factor (elevation units → metres)",
                                         QgsProcessingParameterNumber.Double, defaultValue=1.0),
            QgsProcessingParameterNumber("SUN_AZIMUTH", "Hillshade sun azimuth (degrees)",
                                         QgsProcessingParameterNumber.Double, defaultValue=315.0, minValue=0.0,
                                         maxValue=360.0),
            QgsProcessingParameterNumber("SUN_ALTITUDE", "Hillshade sun altitude (degrees)",
                                         QgsProcessingParameterNumber.Double, defaultValue=45.0, minValue=0.0,
                                         maxValue=90.0),
            QgsProcessingParameterNumber("RELIEF_PIXELS", "Relative relief neighbourhood (pixels; band "
                                         "relative_relief_<N>)", QgsProcessingParameterNumber.Integer,
                                         defaultValue=RELIEF_PIXELS, minValue=1),
            QgsProcessingParameterNumber("VALLEY_DEPTH_RADIUS", "Valley depth radius (m): half the widest valley "
                                         "measured from crest to floor", QgsProcessingParameterNumber.Double,
                                         defaultValue=VALLEY_DEPTH_RADIUS, minValue=0.0),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Terrain"))

    def compute(self, parameters, context, feedback, progress):
        dem, _ = layer_file(self.parameterAsRasterLayer(parameters, "INPUT", context), "DEM")
        extent, extent_crs = extent_with_crs(self, parameters, "EXTENT", context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        terrain_derivatives(
            dem, out,
            tpi_radius=self.parameterAsDouble(parameters, "TPI_RADIUS", context),
            z_factor=self.parameterAsDouble(parameters, "Z_FACTOR", context),
            sun_azimuth=self.parameterAsDouble(parameters, "SUN_AZIMUTH", context),
            sun_altitude=self.parameterAsDouble(parameters, "SUN_ALTITUDE", context),
            extent=extent, extent_crs=extent_crs,
            relief_pixels=self.parameterAsInt(parameters, "RELIEF_PIXELS", context),
            valley_depth_radius=self.parameterAsDouble(parameters, "VALLEY_DEPTH_RADIUS", context),
            progress=progress,
        )
        return {"OUTPUT": out}
