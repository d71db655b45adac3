"""The `landslide_mapper` Processing provider: toolbox, batch mode, graphical modeler and qgis_process."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

ICON = Path(__file__).resolve().parent.parent / "ui" / "icons" / "landslide_mapper.svg"
MODELS = Path(__file__).resolve().parent / "graphical_models"  # graphical models (.model3) from scripts/make_models.py


def algorithm_classes() -> list:
    """Every algorithm the provider offers; ids are stable API (see DESIGN.md)."""
    from .algorithms import ALGORITHMS

    return list(ALGORITHMS)


class ShippedModel(QgsProcessingModelAlgorithm):
    """A shipped graphical model under a stable id from its file name (`landslide_mapper:rapid_landslide_mapping`),
    shown with the model's own name ("Rapid landslide mapping"): ids with spaces break scripts and batch files."""

    def __init__(self, model_id: str = ""):
        super().__init__()
        self._model_id = model_id

    def name(self) -> str:
        return self._model_id or super().name()

    def displayName(self) -> str:  # noqa: N802
        return super().name()

    def createInstance(self):  # noqa: N802
        instance = ShippedModel(self._model_id)
        instance.loadVariant(self.toVariant())
        return instance


def shipped_models() -> list:
    """The graphical Processing models the plugin ships (e.g. "Rapid landslide mapping"), ready to add."""
    models = []
    for path in sorted(MODELS.glob("*.model3")):
        model = ShippedModel(path.stem)
        if model.fromFile(str(path)):
            models.append(model)
    return models


class LandslideMapperProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "landslide_mapper"

    def name(self) -> str:
        return "Landslide Mapper"

    def longName(self) -> str:
        return "Landslide Mapper: Sentinel-1/2 landslide mapping with local deep learning"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:
        return str(ICON)

    def loadAlgorithms(self) -> None:
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
        for model in shipped_models():
            self.addAlgorithm(model)
        # A model's steps are found in the registry, where this provider is not yet on first load: the models
        # are read again once it is, so that they know their outputs.
        registry = QgsApplication.processingRegistry()
        if registry.providerById(self.id()) is not self:
            registry.providerAdded.connect(self._reattach_models)

    def _reattach_models(self, provider_id: str) -> None:
        registry = QgsApplication.processingRegistry()
        if provider_id != self.id() or registry.providerById(self.id()) is not self:
            return
        registry.providerAdded.disconnect(self._reattach_models)
        for alg in self.algorithms():
            if isinstance(alg, QgsProcessingModelAlgorithm):
                alg.loadVariant(alg.toVariant())
