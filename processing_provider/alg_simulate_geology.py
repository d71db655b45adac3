"""simulate_geology: a synthetic multi-class geological scene with known truth (bedrock, wetlands, ravines, scars)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from .base import LandslideAlgorithm

OUTPUTS = {
    "DEM": ("dem", "Elevation"),
    "OPTICAL": ("optical", "Optical image (B02, B03, B04, B08)"),
    "LABELS_RASTER": ("labels_raster", "Class labels (raster)"),
}


class SimulateGeologyAlgorithm(LandslideAlgorithm):
    _id = "simulate_geology"
    _display_name = "Simulate a geological map (multi-class demo data)"
    _group = "Prepare inputs"
    _group_id = "prepare"
    _help = (
        "Generates a synthetic landscape with known truth for the thesis's mapping jobs, to try multi-class "
        "mapping without data: marine-clay flats (background) with bedrock outcrops (rough, higher, bare grey "
        "rock), wetlands (flat, low, dark in near infrared), sharp ravines (dendritic, narrow V-shaped, forested), "
        "smooth ravines (parallel, broad U-shaped, grassy) and landslide scars (fresh soil on ravine sides).\n"
        "<b>Outputs</b>: a DEM (elevation, m), an optical image (B02, B03, B04, B08 reflectance × 10000, to use as "
        "the post-event image of the s2_terrain preset), the class labels (paletted raster, class names as "
        "categories, 0 background … 5 landslide) and classes.json (the class table). The same seed always gives "
        "the same scene."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterNumber("WIDTH", "Width (pixels)", defaultValue=512, minValue=64))
        self.addParameter(QgsProcessingParameterNumber("HEIGHT", "Height (pixels)", defaultValue=512, minValue=64))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        for key, (_, label) in OUTPUTS.items():
            self.addOutput(QgsProcessingOutputRasterLayer(key, label))
        self.addOutput(QgsProcessingOutputFile("CLASSES", "Class table (JSON)"))

    def folder_kinds(self):
        from ..core.simulate.geology import GEOLOGY_SCENE

        return {"OUTPUT_FOLDER": GEOLOGY_SCENE}

    def compute(self, parameters, context, feedback, progress):
        from ..core.simulate.geology import simulate_geology
        from .styles import ClassStylePostProcessor

        scene = simulate_geology(
            self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
            width=self.parameterAsInt(parameters, "WIDTH", context),
            height=self.parameterAsInt(parameters, "HEIGHT", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            progress=progress,
        )
        results = {key: str(getattr(scene, attr)) for key, (attr, _) in OUTPUTS.items()}
        self.style_output(context, results["LABELS_RASTER"], ClassStylePostProcessor(scene.classes))
        results["CLASSES"] = str(scene.classes_json)
        results["OUTPUT_FOLDER"] = str(scene.classes_json.parent)
        return results
