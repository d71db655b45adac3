"""terrain: DEM → slope, aspect, hillshade, TPI, roughness (metres, also for DEMs in degrees)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.terrain import terrain_derivatives
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
        "Distances are in metres whatever the DEM's CRS: for DEMs in degrees (EPSG:4326, e.g. 30 m SRTM/AW3D) the "
        "pixel size is converted per row on the ellipsoid, so slopes are right at any latitude. Add the result to "
        "'Build change stack' as a terrain raster: it is resampled onto the stack's grid (aspect by nearest "
        "neighbour, so 350° and 10° never average to 180°)."
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
            progress=progress,
        )
        return {"OUTPUT": out}
