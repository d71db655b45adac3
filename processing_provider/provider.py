"""The `landslide_mapper` Processing provider: toolbox, batch mode, graphical modeler and qgis_process."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

ICON = Path(__file__).resolve().parent.parent / "ui" / "icons" / "landslide_mapper.svg"


def algorithm_classes() -> list:
    """Every algorithm the provider offers; ids are stable API (see DESIGN.md)."""
    from .algorithms import ALGORITHMS

    return list(ALGORITHMS)


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
