"""s2_composite: several Sentinel-2 acquisitions → one cloud-free composite (greenest pixel, median, percentile)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.composites import DEFAULT_SCL_MASK, parse_classes, s2_composite
from .base import LandslideAlgorithm, crs_or_none, extent_with_crs, layer_file, optional_number

METHODS = [("greenest", "Greenest pixel (max NDVI)"), ("median", "Median"), ("percentile", "Percentile")]


class S2CompositeAlgorithm(LandslideAlgorithm):
    _id = "s2_composite"
    _display_name = "Sentinel-2 composite (cloud-free)"
    _group = "Prepare inputs"
    _group_id = "prepare"
    _help = (
        "Combines several Sentinel-2 acquisitions of the same area into one cloud-free image, as the source studies "
        "did on Google Earth Engine, from scenes on your disk.\n\n"
        "<b>Acquisitions</b>: each one is a Level-2A <i>.SAFE</i> folder (or its MTD_MSIL2A.xml), a zipped SAFE as "
        "downloaded, a folder of single-band rasters named by band (B02.tif, T33UUP_…_B04_10m.jp2), or a multi-band "
        "GeoTIFF whose band descriptions name the bands (B02, B03, B04, B08, SCL …; otherwise list them in "
        "<i>Band names of undescribed rasters</i>).\n"
        "<b>Masking</b>: pixels whose scene classification (SCL) is one of the listed classes are left out (default "
        "3 cloud shadow, 8/9 cloud, 10 cirrus, 11 snow), as are pixels at or above the cloud-probability threshold "
        "where a probability raster is given (one per acquisition, same order; s2cloudless 0–1 or 0–100; a SAFE's "
        "own MSK_CLDPRB is used otherwise).\n"
        "<b>Method</b>: <i>greenest pixel</i> takes, per pixel, every band from the clear date with the highest NDVI "
        "(the quality mosaic of the Jølster study: least cloud, snow and shadow, fullest vegetation); <i>median</i> "
        "and <i>percentile</i> work band by band over the clear dates.\n"
        "<b>Output</b>: Float32 GeoTIFF on the 10 m grid of the first acquisition (or the target CRS/resolution), "
        "20 m and 60 m bands resampled: the bands (reflectance ×10 000), NDVI, and clear_count, the number of "
        "clear observations per pixel. Pixels with none are nodata. Shown in true colour; a false-colour style "
        "(NIR-red-green) is saved with the layer."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", "Acquisitions (.SAFE folders or zips, band folders, GeoTIFFs)", QgsProcessing.TypeFile))
        self.addParameter(self.enum_parameter("METHOD", "Method", [m[1] for m in METHODS],
                                              default=0, keys=[m[0] for m in METHODS]))
        self.addParameter(QgsProcessingParameterNumber("PERCENTILE", "Percentile (method 'Percentile')",
                                                       QgsProcessingParameterNumber.Double, defaultValue=50.0,
                                                       minValue=0.0, maxValue=100.0))
        self.addParameter(QgsProcessingParameterString(
            "BANDS", "Bands to keep (comma-separated; empty = all bands every acquisition has)", optional=True))
        self.addParameter(QgsProcessingParameterString(
            "SCL_CLASSES", "SCL classes to mask", defaultValue=", ".join(map(str, DEFAULT_SCL_MASK)), optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent (area of interest)", optional=True))
        advanced = [
            QgsProcessingParameterMultipleLayers("CLOUD_PROBABILITY", "Cloud probability rasters (one per "
                                                 "acquisition, same order)", QgsProcessing.TypeRaster, optional=True),
            QgsProcessingParameterNumber("CLOUD_THRESHOLD", "Cloud probability threshold (%)",
                                         QgsProcessingParameterNumber.Double, defaultValue=50.0, minValue=0.0,
                                         maxValue=100.0),
            QgsProcessingParameterString("INPUT_BANDS", "Band names of undescribed rasters, in file order "
                                         "(e.g. B02,B03,B04,B08)", optional=True),
            *self.output_grid_parameters("the first acquisition's", "units of the target CRS; empty = 10 m native"),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Sentinel-2 composite"))

    def compute(self, parameters, context, feedback, progress):
        inputs = self.parameterAsFileList(parameters, "INPUT", context)
        probabilities = [layer_file(x, "cloud probability")[0]
                         for x in self.parameterAsLayerList(parameters, "CLOUD_PROBABILITY", context)]
        extent, extent_crs = extent_with_crs(self, parameters, "EXTENT", context)
        input_bands = self.parameterAsString(parameters, "INPUT_BANDS", context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        s2_composite(
            inputs, out,
            method=METHODS[self.enum_index(parameters, "METHOD", context)][0],
            percentile=self.parameterAsDouble(parameters, "PERCENTILE", context),
            bands=self.parameterAsString(parameters, "BANDS", context) or None,
            scl_classes=parse_classes(self.parameterAsString(parameters, "SCL_CLASSES", context) or ""),
            cloud_probability=probabilities or None,
            cloud_threshold=self.parameterAsDouble(parameters, "CLOUD_THRESHOLD", context),
            input_bands=[b for b in input_bands.split(",") if b.strip()] or None,
            crs=crs_or_none(self, parameters, "TARGET_CRS", context),
            resolution=optional_number(parameters, "RESOLUTION"),
            extent=extent, extent_crs=extent_crs,
            progress=progress,
        )
        self.style_output(context, out, "s2_composite")
        return {"OUTPUT": out}
