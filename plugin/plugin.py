"""LandslideMapperPlugin: registers the Processing provider, adds a Raster menu, a toolbar, the docks (model,
evaluation, training), the Doctor, and "Style as …" actions on raster layers.

The plugin object is a thin shell: all work happens in the `landslide_mapper` Processing algorithms (the docks run
them as background tasks), so what the menu offers can also be done in batch mode, in the graphical modeler and
with `qgis_process`. Nothing here imports torch; the plugin loads in a QGIS without PyTorch and says what to install.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMapLayerType, QgsProject, QgsRasterLayer, QgsSettings
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon
from qgis.PyQt.QtWidgets import QAction, QDockWidget, QMenu

ROOT = Path(__file__).resolve().parent.parent
ICON = ROOT / "ui" / "icons" / "landslide_mapper.svg"
README = ROOT / "README.md"
PROVIDER_ID = "landslide_mapper"
MENU = "&Landslide Mapper"  # submenu of the Raster menu
TOOLBAR_NAME = "Landslide Mapper"
TOOLBAR_OBJECT_NAME = "LandslideMapperToolbar"
ICONS = ROOT / "ui" / "icons"
LAYER_MENU = "Landslide Mapper"  # submenu of a raster layer's context menu
DOCK_SETTINGS = "landslide_mapper/docks"  # where the docks were left: area, width, floating geometry
DOCK_WIDTH = 520  # px on first open: layer lists show their names beside the labels
# dock key → (module, class, menu text, icon, tooltip)
DOCKS = {
    "model": ("model_dock", "ModelDock", "Mapping panel", "model",
              "Panel: open a model package, map its input bands and map landslides (the 'predict' algorithm)"),
    "evaluation": ("evaluation_dock", "EvaluationDock", "Evaluation panel", "evaluate",
                   "Panel: scores, confusion map and comparison of landslide maps (the 'evaluate' algorithm)"),
    "training": ("training_dock", "TrainingDock", "Training panel", "train",
                 "Panel: export training chips and train a model package (the 'export_chips' and 'train' "
                 "algorithms)"),
}
ALGORITHMS_MENU = "Processing algorithms"  # the submenu with one dialog per algorithm, grouped as in the toolbox


class LandslideMapperPlugin:
    """What QGIS holds while the plugin is enabled: the provider, the menu entries and the toolbar."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions: list[QAction] = []  # every action we put in the Raster menu (toolbar ones included)
        self.algorithm_actions: list[QAction] = []  # one per algorithm, in the "Processing algorithms" submenu
        self.algorithms_menu = None
        self.toolbar = None
        self.docks: dict = {}  # key → dock widget, created when first shown
        self.dock_actions: dict[str, QAction] = {}
        self.layer_actions: list[QAction] = []  # "Style as …" in the raster layers' context menu
        self.doctor = None

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
        """Register the provider; add the Raster ▸ Landslide Mapper menu, the toolbar, the dock and Doctor
        actions and the "Style as …" entries of raster layers' context menu."""
        from ..ui.doctor import keep_triton_out

        keep_triton_out()  # in the GUI, triton (from CUDA PyTorch) would crash QGIS next to OpenGL's LLVM
        self.initProcessing()
        main_window = self.iface.mainWindow()

        self.toolbar = self.iface.addToolBar(TOOLBAR_NAME)
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)

        tools = QAction(QIcon(str(ICON)), "Open the Processing toolbox", main_window)
        tools.setObjectName("landslideMapperOpenTools")
        tools.setToolTip("Show the Processing toolbox, where the Landslide Mapper algorithms live")
        tools.triggered.connect(self.open_tools)

        help_action = QAction(QIcon(str(ICONS / "help.svg")), "Help", main_window)
        help_action.setObjectName("landslideMapperHelp")
        help_action.setToolTip("Open the Landslide Mapper README")
        help_action.triggered.connect(self.open_help)

        for key, (_, _, text, icon_name, tip) in DOCKS.items():
            action = QAction(QIcon(str(ICONS / f"{icon_name}.svg")), text, main_window)
            action.setObjectName(f"landslideMapperDock_{key}")
            action.setToolTip(tip)
            action.setCheckable(True)
            action.toggled.connect(lambda visible, k=key: self.show_dock(k, visible))
            self.dock_actions[key] = action

        doctor = QAction(QIcon(str(ICONS / "doctor.svg")), "Doctor: check the installation…", main_window)
        doctor.setObjectName("landslideMapperDoctor")
        doctor.setToolTip("QGIS, Python, PyTorch and GPU versions, what is missing and how to install it")
        doctor.triggered.connect(self.open_doctor)

        # Raster ▸ Landslide Mapper: the panels, then the algorithms' dialogs (a submenu), then tools and help.
        self.algorithms_menu = QMenu(ALGORITHMS_MENU, main_window)
        self.algorithms_menu.setObjectName("landslideMapperAlgorithmsMenu")
        self.algorithms_menu.setToolTipsVisible(True)
        algorithms_action = self.algorithms_menu.menuAction()
        algorithms_action.setObjectName("landslideMapperAlgorithms")
        algorithms_action.setIcon(QIcon(str(ICON)))
        menu = [*self.dock_actions.values(), self._separator("landslideMapperSeparatorPanels"), algorithms_action,
                self._separator("landslideMapperSeparatorAlgorithms"), tools, doctor, help_action]
        for action in menu:
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)
        for action in (*self.dock_actions.values(), tools, doctor, help_action):
            self.toolbar.addAction(action)

        for kind, text in (("dndvi", "Style as dNDVI (vegetation change)"),
                           ("sar_change", "Style as SAR change (dB)")):
            action = QAction(QIcon(str(ICONS / "style.svg")), text, main_window)
            action.setObjectName(f"landslideMapperStyle_{kind}")
            action.triggered.connect(lambda _checked=False, k=kind: self.style_current_layer(k))
            self.iface.addCustomActionForLayerType(action, LAYER_MENU, QgsMapLayerType.RasterLayer, True)
            self.layer_actions.append(action)
        QgsProject.instance().layersAdded.connect(self.style_new_layers)
        self._warn_without_torch()

        # One entry per algorithm, opening its dialog (same as double-clicking it in the toolbox), by group.
        group = None
        for algorithm in self._algorithms():
            if algorithm.group() != group:
                group = algorithm.group()
                self.algorithms_menu.addSection(group)
            action = QAction(algorithm.icon(), f"{algorithm.displayName()}…", main_window)
            action.setObjectName(f"landslideMapperRun_{algorithm.name()}")
            action.setToolTip(algorithm.shortDescription() or algorithm.displayName())
            action.triggered.connect(lambda _checked=False, alg_id=algorithm.id(): self.open_algorithm(alg_id))
            self.algorithms_menu.addAction(action)
            self.algorithm_actions.append(action)

    def _separator(self, name: str) -> QAction:
        separator = QAction(self.iface.mainWindow())
        separator.setSeparator(True)
        separator.setObjectName(name)
        return separator

    def unload(self) -> None:
        """Remove docks, menu entries, layer actions, the toolbar and the provider; QGIS is left as before initGui."""
        from ..ui.doctor import keep_triton_out

        keep_triton_out(install=False)
        try:
            QgsProject.instance().layersAdded.disconnect(self.style_new_layers)
        except TypeError:  # not connected (initGui never ran, or unload runs twice)
            pass
        self._remember_sizes()
        for dock in self.docks.values():
            if getattr(dock, "chain", None) is not None and dock.chain.running:
                dock.chain.cancel()
            self.iface.removeDockWidget(dock)
            dock.setParent(None)
            dock.deleteLater()
        self.docks, self.dock_actions = {}, {}
        if self.doctor is not None:
            self.doctor.close()
            self.doctor.deleteLater()
            self.doctor = None
        for action in self.layer_actions:
            self.iface.removeCustomActionForLayerType(action)
            action.deleteLater()
        self.layer_actions = []
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            if action is not getattr(self.algorithms_menu, "menuAction", lambda: None)():
                action.deleteLater()
        self.actions = []
        for action in self.algorithm_actions:
            action.deleteLater()
        self.algorithm_actions = []
        if self.algorithms_menu is not None:
            self.algorithms_menu.deleteLater()
            self.algorithms_menu = None
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

    # -- docks ------------------------------------------------------------------------------------------------
    def dock(self, key: str):
        """The dock widget `key` ('model', 'evaluation', 'training'), created on first use (hidden)."""
        if key not in self.docks:
            module_name, class_name, *_ = DOCKS[key]
            module = importlib.import_module(f"..ui.{module_name}", __package__)  # lazily: docks are Qt-heavy
            dock = getattr(module, class_name)(self.iface, self.iface.mainWindow())
            dock.hide()
            self._place_dock(dock)
            dock.visibilityChanged.connect(lambda visible, k=key: self._sync_action(k, visible))
            dock.dockLocationChanged.connect(lambda area, d=dock: self._remember_placement(d, area))
            dock.topLevelChanged.connect(lambda _floating, d=dock: self._remember_placement(d))
            if key == "training":
                dock.loadRequested.connect(self.load_in_model_dock)
            if key == "model":
                dock.runFinished.connect(self._offer_mask_for_evaluation)
            self.docks[key] = dock
        return self.docks[key]

    def _place_dock(self, dock) -> None:
        """Our docks share one place, tabbed together: where the user left them last time, else the right dock
        area beside (not under) the Processing toolbox, as wide as their widest control needs."""
        from ..ui.common import fit_dock_width

        main_window = self.iface.mainWindow()
        settings = QgsSettings()
        area = Qt.DockWidgetArea(int(settings.value(f"{DOCK_SETTINGS}/area", int(Qt.RightDockWidgetArea))))
        if area not in (Qt.LeftDockWidgetArea, Qt.RightDockWidgetArea, Qt.TopDockWidgetArea,
                        Qt.BottomDockWidgetArea):
            area = Qt.RightDockWidgetArea
        ours = [d for d in self.docks.values() if d is not dock]
        toolbox = main_window.findChild(QDockWidget, "ProcessingToolbox")
        self.iface.addDockWidget(area, dock)
        if ours:
            main_window.tabifyDockWidget(ours[0], dock)
        elif (toolbox is not None and toolbox.isVisible() and not toolbox.isFloating()
              and main_window.dockWidgetArea(toolbox) == area):
            main_window.splitDockWidget(toolbox, dock, Qt.Horizontal)  # full height, not squeezed under it
        width = max(fit_dock_width(dock), int(settings.value(f"{DOCK_SETTINGS}/width", 0) or 0) or DOCK_WIDTH)
        main_window.resizeDocks([dock], [width], Qt.Horizontal)
        if settings.value(f"{DOCK_SETTINGS}/floating", False, type=bool):
            geometry = settings.value(f"{DOCK_SETTINGS}/geometry")
            dock.setFloating(True)
            if geometry is not None:
                dock.restoreGeometry(geometry)

    def _remember_placement(self, dock, area=None) -> None:
        """Area, width and floating geometry of our docks, for the next session."""
        settings = QgsSettings()
        if area is not None and int(area) != int(Qt.NoDockWidgetArea):
            settings.setValue(f"{DOCK_SETTINGS}/area", int(area))
        settings.setValue(f"{DOCK_SETTINGS}/floating", dock.isFloating())
        if dock.isFloating():
            settings.setValue(f"{DOCK_SETTINGS}/geometry", dock.saveGeometry())

    def _remember_sizes(self) -> None:
        visible = [d for d in self.docks.values() if d.isVisible() and not d.isFloating()]
        if visible:
            QgsSettings().setValue(f"{DOCK_SETTINGS}/width", visible[0].width())
        for dock in self.docks.values():
            self._remember_placement(dock)
            break

    def show_dock(self, key: str, visible: bool = True):
        dock = self.dock(key)
        if visible:
            dock.show()
            dock.raise_()  # also brings a dock tabbed behind another to the front
        else:
            dock.hide()
        return dock

    def _sync_action(self, key: str, visible: bool) -> None:
        action = self.dock_actions.get(key)
        if action is not None and action.isChecked() != visible:
            action.blockSignals(True)
            action.setChecked(visible)
            action.blockSignals(False)

    def load_in_model_dock(self, package_path: str) -> bool:
        """Show the model dock with a freshly trained package loaded (the training dock's one-click button)."""
        return self.show_dock("model").load_package(package_path)

    def _offer_mask_for_evaluation(self, ok: bool, _name: str) -> None:
        """The evaluation dock, when open, gets the new landslide mask as the map to check."""
        mask = self.docks["model"].result_layer("OUTPUT_MASK") if ok else None
        if mask is not None and "evaluation" in self.docks:
            self.docks["evaluation"].prediction_box.setLayer(mask)

    def open_doctor(self):
        from ..ui.doctor import DoctorDialog

        if self.doctor is None:
            self.doctor = DoctorDialog(self.iface.mainWindow())
        else:
            self.doctor.refresh()
        self.doctor.show()
        self.doctor.raise_()
        return self.doctor

    def _warn_without_torch(self) -> None:
        """Say once, at start, that mapping and training need PyTorch (without importing it)."""
        def installed(module: str) -> bool:
            try:
                return importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                return False

        missing = [m for m in ("torch", "segmentation_models_pytorch") if not installed(m)]
        if missing:
            self.iface.messageBar().pushMessage(
                "Landslide Mapper",
                f"{', '.join(missing)} is not installed in QGIS's Python: mapping and training need it. "
                f"Raster ▸ Landslide Mapper ▸ Doctor shows the command that installs it.",
                level=Qgis.Warning,
            )

    # -- styles -----------------------------------------------------------------------------------------------
    def style_current_layer(self, kind: str) -> bool:
        """The layer context menu's "Style as dNDVI / SAR change" on the selected raster layer."""
        from ..processing_provider.styles import STYLE_RANGES
        from ..ui.layer_styles import band_descriptions, style_band_as, style_fit

        layer = self.iface.activeLayer()
        if not isinstance(layer, QgsRasterLayer):
            return False
        band = style_band_as(layer, kind)
        label = STYLE_RANGES[kind][0]
        names = band_descriptions(layer)
        what = f"band {band}{f' ({names[band - 1]})' if band <= len(names) and names[band - 1] else ''}"
        warning = style_fit(layer, band, kind)
        if warning:
            self.iface.messageBar().pushMessage("Landslide Mapper", f"'{layer.name()}' styled as {label}, but "
                                                f"{warning}", level=Qgis.Warning, duration=15)
        else:
            self.iface.messageBar().pushMessage("Landslide Mapper", f"'{layer.name()}': {what} shown as {label}.",
                                                level=Qgis.Info, duration=5)
        return True

    def style_new_layers(self, layers) -> None:
        """Change stacks added to the project show their dNDVI or SAR-change band with the change style."""
        from ..ui.layer_styles import style_new_stack

        for layer in layers:
            style_new_stack(layer)
