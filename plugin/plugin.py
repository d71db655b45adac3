"""LandslideMapperPlugin: registers the Processing provider and adds a Raster menu and a toolbar to QGIS.

The plugin object is a thin shell: all work happens in the `landslide_mapper` Processing algorithms, so what the
menu offers can also be done in batch mode, in the graphical modeler and with `qgis_process`. Nothing here imports
torch; the plugin loads in a QGIS without PyTorch.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon
from qgis.PyQt.QtWidgets import QAction

ROOT = Path(__file__).resolve().parent.parent
ICON = ROOT / "ui" / "icons" / "landslide_mapper.svg"
README = ROOT / "README.md"
PROVIDER_ID = "landslide_mapper"
MENU = "&Landslide Mapper"  # submenu of the Raster menu
TOOLBAR_NAME = "Landslide Mapper"
TOOLBAR_OBJECT_NAME = "LandslideMapperToolbar"


class LandslideMapperPlugin:
    """What QGIS holds while the plugin is enabled: the provider, the menu entries and the toolbar."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions: list[QAction] = []  # every action we put in the Raster menu (toolbar ones included)
        self.toolbar = None

    # -- Processing -------------------------------------------------------------------------------------------
    def initProcessing(self) -> None:  # noqa: N802 (QGIS calls this name, also from qgis_process)
        """Register the `landslide_mapper` provider with the Processing registry (once)."""
        if self.provider is not None:
            return
        from ..processing_provider.provider import LandslideMapperProvider

        provider = LandslideMapperProvider()
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider

    def unloadProcessing(self) -> None:  # noqa: N802
        """Remove our provider, and only ours, from the registry (the registry deletes it)."""
        if self.provider is None:
            return
        registry = QgsApplication.processingRegistry()
        if registry.providerById(PROVIDER_ID) is self.provider:
            registry.removeProvider(self.provider)
        self.provider = None

    # -- GUI --------------------------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802
        """Register the provider, then add the Raster ▸ Landslide Mapper menu and the toolbar."""
        self.initProcessing()
        main_window = self.iface.mainWindow()

        self.toolbar = self.iface.addToolBar(TOOLBAR_NAME)
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)

        tools = QAction(QIcon(str(ICON)), "Open Landslide Mapper tools", main_window)
        tools.setObjectName("landslideMapperOpenTools")
        tools.setToolTip("Show the Processing toolbox, where the Landslide Mapper algorithms live")
        tools.triggered.connect(self.open_tools)

        help_action = QAction(QgsApplication.getThemeIcon("/mActionHelpContents.svg"), "Help", main_window)
        help_action.setObjectName("landslideMapperHelp")
        help_action.setToolTip("Open the Landslide Mapper README")
        help_action.triggered.connect(self.open_help)

        for action in (tools, help_action):
            self.iface.addPluginToRasterMenu(MENU, action)
            self.toolbar.addAction(action)
            self.actions.append(action)

        # One menu entry per algorithm, opening its dialog (same as double-clicking it in the toolbox).
        for algorithm in self._algorithms():
            action = QAction(algorithm.icon(), f"{algorithm.displayName()}…", main_window)
            action.setObjectName(f"landslideMapperRun_{algorithm.name()}")
            action.setToolTip(algorithm.shortDescription() or algorithm.displayName())
            action.triggered.connect(lambda _checked=False, alg_id=algorithm.id(): self.open_algorithm(alg_id))
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)

    def unload(self) -> None:
        """Remove every menu entry, the toolbar and the provider; QGIS is left as before initGui."""
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        self.unloadProcessing()

    # -- actions ----------------------------------------------------------------------------------------------
    def _algorithms(self) -> list:
        if self.provider is None:
            return []
        return sorted(self.provider.algorithms(), key=lambda alg: (alg.group(), alg.displayName()))

    def open_tools(self) -> None:
        """Show the Processing toolbox (QGIS 3.22 has no iface call for it; the Processing plugin owns it)."""
        from qgis import utils

        toolbox = getattr(utils.plugins.get("processing"), "toolbox", None)
        if toolbox is not None:
            toolbox.setUserVisible(True)
            toolbox.raise_()
            return
        toolbox_action = self.iface.mainWindow().findChild(QAction, "toolboxAction")
        if toolbox_action is not None:
            toolbox_action.setChecked(True)
            return
        self.iface.messageBar().pushMessage(
            "Landslide Mapper",
            "The Processing toolbox is not available: enable the core 'Processing' plugin "
            "(Plugins ▸ Manage and Install Plugins ▸ Installed).",
            level=Qgis.Warning,
        )

    def open_algorithm(self, algorithm_id: str) -> None:
        """Open the Processing dialog of one algorithm."""
        import processing  # QGIS's Processing plugin; imported late because it needs a running QGIS

        processing.execAlgorithmDialog(algorithm_id)

    def open_help(self) -> bool:
        """Open the README (installation, algorithms, examples) with the system's viewer."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(README)))
