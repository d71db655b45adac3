"""LandslideMapperPlugin: registers the Processing provider, adds a Raster menu, a toolbar, the docks (model,
evaluation, training), the Doctor, and "Style as …" actions on raster layers.

The plugin object is a thin shell: all work happens in the `landslide_mapper` Processing algorithms (the docks run
them as background tasks), so what the menu offers can also be done in batch mode, in the graphical modeler and
with `qgis_process`. Nothing here imports torch; the plugin loads in a QGIS without PyTorch and says what to install.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMapLayerType, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon
from qgis.PyQt.QtWidgets import QAction

ROOT = Path(__file__).resolve().parent.parent
ICON = ROOT / "ui" / "icons" / "landslide_mapper.svg"
README = ROOT / "README.md"
PROVIDER_ID = "landslide_mapper"
MENU = "&Landslide Mapper"  # submenu of the Raster menu
TOOLBAR_NAME = "Landslide Mapper"
TOOLBAR_OBJECT_NAME = "LandslideMapperToolbar"
ICONS = ROOT / "ui" / "icons"
LAYER_MENU = "Landslide Mapper"  # submenu of a raster layer's context menu
# dock key → (module, class, menu text, icon, tooltip)
DOCKS = {
    "model": ("model_dock", "ModelDock", "Map landslides with a model", "model",
              "Open a model package, map its input bands and map landslides (the 'predict' algorithm)"),
    "evaluation": ("evaluation_dock", "EvaluationDock", "Evaluate a landslide map", "evaluate",
                   "Scores, confusion map and comparison of landslide maps (the 'evaluate' algorithm)"),
    "training": ("training_dock", "TrainingDock", "Train a landslide model", "train",
                 "Export training chips and train a model package (the 'export_chips' and 'train' algorithms)"),
}


class LandslideMapperPlugin:
    """What QGIS holds while the plugin is enabled: the provider, the menu entries and the toolbar."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions: list[QAction] = []  # every action we put in the Raster menu (toolbar ones included)
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

        tools = QAction(QIcon(str(ICON)), "Open Landslide Mapper tools", main_window)
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

        for action in (tools, *self.dock_actions.values(), doctor, help_action):
            self.iface.addPluginToRasterMenu(MENU, action)
            self.toolbar.addAction(action)
            self.actions.append(action)

        for kind, text in (("dndvi", "Style as dNDVI (vegetation change)"),
                           ("sar_change", "Style as SAR change (dB)")):
            action = QAction(QIcon(str(ICONS / "style.svg")), text, main_window)
            action.setObjectName(f"landslideMapperStyle_{kind}")
            action.triggered.connect(lambda _checked=False, k=kind: self.style_current_layer(k))
            self.iface.addCustomActionForLayerType(action, LAYER_MENU, QgsMapLayerType.RasterLayer, True)
            self.layer_actions.append(action)
        QgsProject.instance().layersAdded.connect(self.style_new_layers)
        self._warn_without_torch()

        # One menu entry per algorithm, opening its dialog (same as double-clicking it in the toolbox).
        for algorithm in self._algorithms():
            action = QAction(algorithm.icon(), f"{algorithm.displayName()}…", main_window)
            action.setObjectName(f"landslideMapperRun_{algorithm.name()}")
            action.setToolTip(algorithm.shortDescription() or algorithm.displayName())
            action.triggered.connect(lambda _checked=False, alg_id=algorithm.id(): self.open_algorithm(alg_id))
            self.iface.addPluginToRasterMenu(MENU, action)
            self.actions.append(action)

    def unload(self) -> None:
        """Remove docks, menu entries, layer actions, the toolbar and the provider; QGIS is left as before initGui."""
        from ..ui.doctor import keep_triton_out

        keep_triton_out(install=False)
        try:
            QgsProject.instance().layersAdded.disconnect(self.style_new_layers)
        except TypeError:  # not connected (initGui never ran, or unload runs twice)
            pass
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

    # -- docks ------------------------------------------------------------------------------------------------
    def dock(self, key: str):
        """The dock widget `key` ('model', 'evaluation', 'training'), created on first use (hidden)."""
        if key not in self.docks:
            module_name, class_name, *_ = DOCKS[key]
            module = importlib.import_module(f"..ui.{module_name}", __package__)  # lazily: docks are Qt-heavy
            dock = getattr(module, class_name)(self.iface, self.iface.mainWindow())
            dock.hide()
            self.iface.addDockWidget(Qt.RightDockWidgetArea, dock)
            dock.visibilityChanged.connect(lambda visible, k=key: self._sync_action(k, visible))
            if key == "training":
                dock.loadRequested.connect(self.load_in_model_dock)
            if key == "model":
                dock.runFinished.connect(self._offer_mask_for_evaluation)
            self.docks[key] = dock
        return self.docks[key]

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
        from ..ui.layer_styles import style_band_as

        layer = self.iface.activeLayer()
        if not isinstance(layer, QgsRasterLayer):
            return False
        style_band_as(layer, kind)
        return True

    def style_new_layers(self, layers) -> None:
        """Change stacks added to the project show their dNDVI or SAR-change band with the change style."""
        from ..ui.layer_styles import style_new_stack

        for layer in layers:
            style_new_stack(layer)
