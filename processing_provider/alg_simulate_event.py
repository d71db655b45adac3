"""simulate_event: a synthetic landslide event with known truth, for trying the whole chain."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..core.simulate import simulate_event
from .base import LandslideAlgorithm

OUTPUTS = {
    "PRE_S2": ("pre_s2", "Pre-event Sentinel-2"),
    "POST_S2": ("post_s2", "Post-event Sentinel-2"),
    "PRE_S1": ("pre_s1", "Pre-event Sentinel-1 (dB)"),
    "POST_S1": ("post_s1", "Post-event Sentinel-1 (dB)"),
    "DEM": ("dem", "Elevation"),
    "LABELS_RASTER": ("labels_raster", "Landslide labels (raster)"),
}


class SimulateEventAlgorithm(LandslideAlgorithm):
    _id = "simulate_event"
    _display_name = "Simulate a landslide event (demo data)"
    _group = "Prepare inputs"
    _group_id = "prepare"
    _help = (
        "Generates a synthetic storm event with known truth so you can try every step without downloading scenes: "
        "a DEM with steep valleys, pre/post Sentinel-2 reflectance (B02, B03, B04, B08, some cloud-masked nodata), "
        "pre/post Sentinel-1 VV/VH backscatter in dB with speckle, and landslide scars on steep slopes where "
        "vegetation is lost and backscatter changes. The landslides are written as a label raster and as polygons "
        "(GeoPackage, field 'class' = 1). The same seed always gives the same scene."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterNumber("WIDTH", "Width (pixels)", defaultValue=1024, minValue=64))
        self.addParameter(QgsProcessingParameterNumber("HEIGHT", "Height (pixels)", defaultValue=1024, minValue=64))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        for key, (_, label) in OUTPUTS.items():
            self.addOutput(QgsProcessingOutputRasterLayer(key, label))
        self.addOutput(QgsProcessingOutputVectorLayer("LABELS_VECTOR", "Landslide polygons"))

    def folder_kinds(self):
        from ..core.simulate import SIMULATED_EVENT

        return {"OUTPUT_FOLDER": SIMULATED_EVENT}

    def compute(self, parameters, context, feedback, progress):
        event = simulate_event(
            self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
            width=self.parameterAsInt(parameters, "WIDTH", context),
            height=self.parameterAsInt(parameters, "HEIGHT", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            progress=progress,
        )
        results = {key: str(getattr(event, attr)) for key, (attr, _) in OUTPUTS.items()}
        results["LABELS_VECTOR"] = str(event.labels_vector)
        results["OUTPUT_FOLDER"] = str(event.labels_vector.parent)
        return results
