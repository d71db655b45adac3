"""package_info: a human summary of a model package (what it needs, how good it was on validation)."""
from __future__ import annotations

from qgis.core import QgsProcessingOutputNumber, QgsProcessingOutputString, QgsProcessingParameterFile

from .base import LandslideAlgorithm


class PackageInfoAlgorithm(LandslideAlgorithm):
    _id = "package_info"
    _display_name = "Describe a model package"
    _group = "Training"
    _group_id = "training"
    _help = (
        "Opens a model package (.lmpkg), checks it completely (manifest, band statistics, weights) and prints a "
        "summary: the networks or classifier inside, the input bands in order (build your change stack with "
        "these), the training pixel size, the decision threshold and the validation scores.\n"
        "A package may come from anyone, so it is treated as untrusted: one that is damaged or unsafe (pickle files, "
        "archives inside it, oversized entries, network settings that name files or code, values out of range) is "
        "refused with the reason and the field at fault, before any of it is used."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("PACKAGE", "Model package (.lmpkg)", extension="lmpkg"))
        self.addOutput(QgsProcessingOutputString("SUMMARY", "Summary"))
        self.addOutput(QgsProcessingOutputString("INPUT_BANDS", "Input bands (comma-separated)"))
        self.addOutput(QgsProcessingOutputNumber("MEMBERS", "Networks in the package"))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD", "Decision threshold"))
        self.addOutput(QgsProcessingOutputNumber("F1", "Validation F1"))
        self.addOutput(QgsProcessingOutputString("TASK", "Task (binary_segmentation or multiclass_segmentation)"))
        self.addOutput(QgsProcessingOutputString("CLASSES", "Classes (value=name, comma-separated)"))

    def compute(self, parameters, context, feedback, progress):
        from ..core.package_summary import describe
        from ..models.package import read_package

        package = read_package(self.parameterAsFile(parameters, "PACKAGE", context))
        summary = describe(package)
        progress.log(summary)
        f1 = (package.manifest.get("validation_metrics") or {}).get("f1")
        return {"SUMMARY": summary, "INPUT_BANDS": ",".join(package.input_bands),
                "MEMBERS": len(package.manifest["members"]), "THRESHOLD": package.threshold,
                "F1": float("nan") if f1 is None else float(f1), "TASK": package.task,
                "CLASSES": ",".join(f"{c['value']}={c['name']}" for c in package.classes)}
