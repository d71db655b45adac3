"""Regenerate the graphical Processing models the plugin ships (processing_provider/graphical_models/*.model3).

"Rapid landslide mapping" chains three algorithms of the provider: change_stack → predict → evaluate. It is built
with the PyQGIS model API (so it is valid for the QGIS that runs this script; 3.22 is the reference) and saved as
a .model3 that the provider loads. Open it in the Graphical Modeler to see or adapt it; it runs in batch mode like
any algorithm.

    .venv/bin/python scripts/make_models.py            # or: make models
    .venv/bin/python scripts/make_models.py --check    # exit 1 if a committed model differs from this script
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_HASH_SEED"] = "0"  # stable XML order, so regenerated models diff cleanly
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "import"))

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QPointF  # noqa: E402

MODELS = ROOT / "processing_provider" / "graphical_models"
PROVIDER = "landslide_mapper"
GROUP = "Workflows"


def _input(model: QgsProcessingModelAlgorithm, definition, x: float, y: float) -> None:
    component = QgsProcessingModelParameter(definition.name())
    component.setPosition(QPointF(x, y))
    model.addModelParameter(definition, component)


def _child(model, alg_id: str, child_id: str, description: str, x: float, y: float, sources: dict,
           outputs: dict) -> None:
    """Add one algorithm; `sources` maps its parameters to model inputs ('@NAME'), other children's outputs
    ('child.OUTPUT') or fixed values; `outputs` maps its destination parameters to model output names."""
    child = QgsProcessingModelChildAlgorithm(f"{PROVIDER}:{alg_id}")
    child.setChildId(child_id)
    child.setDescription(description)
    child.setPosition(QPointF(x, y))
    for name, source in sources.items():
        if isinstance(source, str) and source.startswith("@"):
            value = QgsProcessingModelChildParameterSource.fromModelParameter(source[1:])
        elif isinstance(source, str) and "." in source and source.split(".")[0] in model.childAlgorithms():
            other, output = source.split(".", 1)
            value = QgsProcessingModelChildParameterSource.fromChildOutput(other, output)
        else:
            value = QgsProcessingModelChildParameterSource.fromStaticValue(source)
        child.addParameterSources(name, [value])
    model_outputs = {}
    for k, (name, label) in enumerate(outputs.items()):
        out = QgsProcessingModelOutput(label, label)
        out.setChildId(child_id)
        out.setChildOutputName(name)
        out.setDescription(label)
        out.setPosition(QPointF(x + 180, y + 40 + 30 * k))
        model_outputs[label] = out
    child.setModelOutputs(model_outputs)
    model.addChildAlgorithm(child)


def rapid_landslide_mapping() -> QgsProcessingModelAlgorithm:
    """change_stack → predict → evaluate, with the inputs a mapper has after an event."""
    from landslide_mapper.core.stack import PRESETS

    model = QgsProcessingModelAlgorithm("Rapid landslide mapping", GROUP, "workflows")
    presets = list(PRESETS) + ["custom (BANDS list)"]
    _input(model, QgsProcessingParameterMultipleLayers("PRE", "Pre-event rasters (Sentinel-1/2 composites)",
                                                       QgsProcessing.TypeRaster), 80, 60)
    _input(model, QgsProcessingParameterMultipleLayers("POST", "Post-event rasters", QgsProcessing.TypeRaster),
           80, 120)
    _input(model, QgsProcessingParameterEnum("PRESET", "Band preset (as the model was trained)", options=presets,
                                             defaultValue="setting2", usesStaticStrings=True), 80, 180)
    _input(model, QgsProcessingParameterFile("PACKAGE", "Model package (.lmpkg)", extension="lmpkg"), 80, 240)
    _input(model, QgsProcessingParameterMapLayer("TRUTH", "Mapped landslides (polygons or label raster)",
                                                 types=[QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeRaster]),
           80, 300)
    _input(model, QgsProcessingParameterString("TRUTH_FIELD", "Class field of the landslide polygons",
                                               defaultValue="class"), 80, 360)
    _child(model, "change_stack", "stack", "Build change stack", 380, 100,
           {"PRE": "@PRE", "POST": "@POST", "PRESET": "@PRESET"}, {"OUTPUT": "Change stack"})
    _child(model, "predict", "predict", "Map landslides with the model", 380, 240,
           {"PACKAGE": "@PACKAGE", "INPUT": "stack.OUTPUT", "DEVICE": "auto"},
           {"OUTPUT_PROBABILITY": "Landslide probability", "OUTPUT_MASK": "Landslide mask",
            "OUTPUT_POLYGONS": "Landslide polygons"})
    _child(model, "evaluate", "evaluate", "Evaluate against the mapped landslides", 380, 400,
           {"PREDICTION": "predict.OUTPUT_MASK", "TRUTH": "@TRUTH", "TRUTH_FIELD": "@TRUTH_FIELD"},
           {"OUTPUT_CONFUSION": "Confusion map", "OUTPUT_REPORT": "Metrics report"})
    model.setHelpContent({
        "ALG_DESC": "The rapid-mapping chain after an event, in one step: builds the change stack from the "
                    "pre- and post-event composites with the preset the model was trained on, maps landslides with "
                    "the model package (probability, mask and polygons), and checks the mask against mapped "
                    "landslides (confusion map and scores). Run it in batch mode for several events or models.",
        "ALG_CREATOR": "Landslide Mapper",
    })
    return model


MODEL_BUILDERS = {"rapid_landslide_mapping.model3": rapid_landslide_mapping}


def write_models(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, build in MODEL_BUILDERS.items():
        path = folder / file_name
        if not build().toFile(str(path)):
            raise RuntimeError(f"could not write {path}")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS)
    parser.add_argument("--check", action="store_true", help="compare with the committed models instead")
    args = parser.parse_args(argv)
    app = QgsApplication([], False)
    app.initQgis()
    from landslide_mapper.processing_provider.provider import LandslideMapperProvider

    # The children must resolve so that the model knows their outputs (its own destination parameters).
    provider = LandslideMapperProvider()  # keep the Python object alive while QGIS uses it
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                stale = [p.name for p in write_models(Path(tmp))
                         if not (MODELS / p.name).exists() or (MODELS / p.name).read_text() != p.read_text()]
            if stale:
                print("out of date (run scripts/make_models.py):", ", ".join(stale))
                return 1
            print(f"{len(MODEL_BUILDERS)} models up to date")
            return 0
        for path in write_models(args.out):
            print(path)
        return 0
    finally:
        app.exitQgis()


if __name__ == "__main__":
    sys.exit(main())
