"""s1_composite: Sentinel-1 GRD backscatter scenes → median VV/VH in dB, per orbit direction."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.composites import DEFAULT_ENL, ORBITS, S1_UNITS, SPECKLE_FILTERS, s1_composite
from .base import LandslideAlgorithm, crs_or_none, extent_with_crs, layer_file, optional_number

FILTER_LABELS = ["None", "Boxcar (mean)", "Lee", "Refined Lee (7×7; edge-preserving)"]


class S1CompositeAlgorithm(LandslideAlgorithm):
    _id = "s1_composite"
    _display_name = "Sentinel-1 composite (median backscatter)"
    _group = "Prepare inputs"
    _group_id = "prepare"
    _help = (
        "Combines several Sentinel-1 GRD backscatter rasters into one median image with VV and VH in dB, as the "
        "studies did on Google Earth Engine (S1_GRD median composites).\n\n"
        "<b>Input</b>: calibrated backscatter GeoTIFFs (σ⁰ or terrain-flattened γ⁰, e.g. from SNAP or Earth Engine) "
        "with bands described VV and VH (or Sigma0_VV_db …; single-polarisation files are fine), in linear power or "
        "dB: <i>auto</i> tells them apart from the values and refuses uncalibrated amplitude.\n"
        "<b>Orbit direction</b>: read from metadata (ORBIT_DIRECTION, orbitProperties_pass) or the file name (ASC, "
        "DESC). Ascending and descending scenes see slopes from opposite sides, so a model trained on one direction "
        "wants composites of that direction; the optional per-direction outputs make both in the same run.\n"
        "<b>Speckle filter</b>: applied to each scene before the median (boxcar or Lee over the window; refined Lee "
        "keeps edges such as scarps sharp).\n"
        "<b>Output</b>: Float32 GeoTIFF, bands VV and VH in dB, median taken in linear power (averaging dB would "
        "bias it low); nodata where no scene has data. Grid of the first scene unless a target CRS/resolution is set."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers("INPUT", "Sentinel-1 backscatter rasters",
                                                               QgsProcessing.TypeRaster))
        self.addParameter(self.enum_parameter("ORBIT", "Orbit direction", list(ORBITS), default=0))
        self.addParameter(self.enum_parameter("UNITS", "Input units", list(S1_UNITS), default=0))
        self.addParameter(self.enum_parameter("SPECKLE_FILTER", "Speckle filter", FILTER_LABELS,
                                              default=0, keys=SPECKLE_FILTERS))
        self.addParameter(QgsProcessingParameterNumber("WINDOW", "Filter window (pixels, odd)", defaultValue=7,
                                                       minValue=3, maxValue=31))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Limit to extent (area of interest)", optional=True))
        advanced = [
            QgsProcessingParameterNumber("ENL", "Equivalent number of looks (Lee filters)",
                                         QgsProcessingParameterNumber.Double, defaultValue=DEFAULT_ENL, minValue=1.0),
            QgsProcessingParameterString("INPUT_BANDS", "Band names of undescribed rasters, in file order (e.g. "
                                         "VV,VH)", optional=True),
            *self.output_grid_parameters("the first scene's", "units of the target CRS"),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Sentinel-1 composite"))
        for direction in ("ASCENDING", "DESCENDING"):
            self.addParameter(QgsProcessingParameterRasterDestination(
                f"OUTPUT_{direction}", f"Sentinel-1 composite, {direction.lower()} scenes only", optional=True,
                createByDefault=False))

    def compute(self, parameters, context, feedback, progress):
        inputs = [layer_file(x, "Sentinel-1")[0] for x in self.parameterAsLayerList(parameters, "INPUT", context)]
        extent, extent_crs = extent_with_crs(self, parameters, "EXTENT", context)
        input_bands = self.parameterAsString(parameters, "INPUT_BANDS", context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        per_direction = {d.lower(): self.parameterAsOutputLayer(parameters, f"OUTPUT_{d}", context)
                         for d in ("ASCENDING", "DESCENDING") if parameters.get(f"OUTPUT_{d}")}
        written = s1_composite(
            inputs, out,
            orbit=ORBITS[self.enum_index(parameters, "ORBIT", context)],
            per_direction={d: p for d, p in per_direction.items() if p},
            units=S1_UNITS[self.enum_index(parameters, "UNITS", context)],
            speckle=SPECKLE_FILTERS[self.enum_index(parameters, "SPECKLE_FILTER", context)],
            window=self.parameterAsInt(parameters, "WINDOW", context),
            enl=self.parameterAsDouble(parameters, "ENL", context),
            input_bands=[b for b in input_bands.split(",") if b.strip()] or None,
            crs=crs_or_none(self, parameters, "TARGET_CRS", context),
            resolution=optional_number(parameters, "RESOLUTION"),
            extent=extent, extent_crs=extent_crs,
            progress=progress,
        )
        results = {"OUTPUT": out}
        for direction in ("ascending", "descending"):
            if direction in per_direction and direction in written:
                results[f"OUTPUT_{direction.upper()}"] = str(written[direction])
        return results
