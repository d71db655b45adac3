"""The docks in a 1920×1080 main window, as on a common desktop: tabbed together in the right dock area, every
control of the run row in view without scrolling, no text cut off, no horizontal scrolling, placement remembered."""
from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsApplication, QgsSettings
from qgis.PyQt.QtCore import QEvent, QPoint, QRect, Qt
from qgis.PyQt.QtWidgets import QAbstractButton, QDockWidget, QLabel, QWidget

import landslide_mapper
from landslide_mapper.plugin.plugin import DOCK_SETTINGS

KEYS = ("model", "evaluation", "training")


@pytest.fixture
def desktop(qgis_iface, qtbot, monkeypatch, landslide_provider, project, isolated_settings):
    """The plugin loaded into a shown 1920×1080 main window that has a Processing toolbox in the right area."""
    QgsSettings().remove(DOCK_SETTINGS)
    window = qgis_iface.mainWindow()
    # pytest-qgis's iface only records dock calls; QGIS puts the dock into its main window
    monkeypatch.setattr(qgis_iface, "addDockWidget", window.addDockWidget)
    monkeypatch.setattr(qgis_iface, "removeDockWidget", window.removeDockWidget)
    window.resize(1920, 1080)
    toolbox = QDockWidget("Processing Toolbox", window)
    toolbox.setObjectName("ProcessingToolbox")
    toolbox.setWidget(QWidget())
    window.addDockWidget(Qt.RightDockWidgetArea, toolbox)
    window.show()
    qtbot.waitExposed(window)
    plugin = landslide_mapper.classFactory(qgis_iface)
    plugin.initGui()
    yield plugin, window
    plugin.unload()
    window.removeDockWidget(toolbox)
    toolbox.deleteLater()
    QgsApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    window.hide()
    QgsSettings().remove(DOCK_SETTINGS)


def _inside(widget: QWidget, window) -> bool:
    """The widget is shown and lies wholly within the visible part of its dock (and of the window)."""
    if not widget.isVisible():
        return False
    dock = widget.parentWidget()
    while not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    top_left = widget.mapTo(dock, QPoint(0, 0))
    return dock.rect().contains(QRect(top_left, widget.size())) and widget.visibleRegion().boundingRect().size() == \
        widget.size()


def _show(plugin, qtbot, key):
    dock = plugin.show_dock(key)
    qtbot.waitUntil(lambda: dock.isVisible() and dock.width() > 0)
    QgsApplication.processEvents()
    return dock


@pytest.mark.parametrize("key", KEYS)
def test_run_row_is_in_view_without_scrolling(desktop, qtbot, key):
    plugin, window = desktop
    dock = _show(plugin, qtbot, key)
    for widget in (dock.run_button, dock.cancel_button, dock.progress):
        assert _inside(widget, window), f"{key}: {widget.text() if hasattr(widget, 'text') else 'progress'}"
        assert not dock.scroll_area.isAncestorOf(widget), "the run row is pinned outside the scroll area"
    # however long the form gets, the run row stays put
    dock.scroll_area.verticalScrollBar().setValue(dock.scroll_area.verticalScrollBar().maximum())
    assert _inside(dock.run_button, window)


@pytest.mark.parametrize("key", KEYS)
def test_no_text_is_cut_and_nothing_scrolls_sideways(desktop, qtbot, key):
    plugin, window = desktop
    dock = _show(plugin, qtbot, key)
    assert dock.scroll_area.horizontalScrollBar().maximum() == 0
    body = dock.scroll_area.widget()
    assert body.width() >= body.minimumSizeHint().width()
    for label in dock.findChildren(QLabel):
        if not label.isVisible() or not label.text():
            continue
        if label.wordWrap():
            assert label.heightForWidth(label.width()) <= label.height() + 1, label.text()
        else:
            assert label.sizeHint().width() <= label.width() + 1, label.text()
    for button in dock.findChildren(QAbstractButton):
        if button.isVisible() and button.text():
            assert button.minimumSizeHint().width() <= button.width() + 1, button.text()
    viewport = dock.scroll_area.viewport()
    for widget in body.findChildren(QWidget):  # nothing runs off the right edge
        if widget.isVisible() and widget.parentWidget() is not None and widget.isWindow() is False:
            right = widget.mapTo(viewport, QPoint(widget.width(), 0)).x()
            assert right <= viewport.width() + 1, f"{type(widget).__name__} {widget.objectName()} ends at {right}"


def test_docks_open_tabbed_together_in_the_right_area_beside_the_toolbox(desktop, qtbot):
    plugin, window = desktop
    docks = [_show(plugin, qtbot, key) for key in KEYS]
    for dock in docks:
        assert window.dockWidgetArea(dock) == Qt.RightDockWidgetArea and not dock.isFloating()
        assert dock.width() >= dock.minimumWidth() > 290
    assert set(window.tabifiedDockWidgets(docks[0])) == set(docks[1:])
    toolbox = window.findChild(QDockWidget, "ProcessingToolbox")
    assert docks[0].height() > toolbox.height() * 0.8 or docks[0].x() != toolbox.x(), "not squeezed under it"


def test_placement_is_remembered_between_sessions(desktop, qtbot, qgis_iface):
    plugin, window = desktop
    dock = _show(plugin, qtbot, "model")
    window.addDockWidget(Qt.LeftDockWidgetArea, dock)  # the user drags it to the left
    QgsApplication.processEvents()
    plugin.unload()
    assert int(QgsSettings().value(f"{DOCK_SETTINGS}/area")) == int(Qt.LeftDockWidgetArea)
    again = landslide_mapper.classFactory(qgis_iface)
    again.initGui()
    try:
        dock = _show(again, qtbot, "model")
        assert window.dockWidgetArea(dock) == Qt.LeftDockWidgetArea
    finally:
        again.unload()
    plugin.initGui()  # the fixture unloads it once more


# -- outputs that last -------------------------------------------------------------------------------------------
def test_runs_default_to_a_kept_folder_not_the_processing_temp_folder(qgis_iface, project, isolated_settings,
                                                                      tmp_path, monkeypatch):
    from qgis.core import QgsProcessingUtils

    from landslide_mapper.ui import common

    monkeypatch.setattr(common.Path, "home", staticmethod(lambda: tmp_path / "home"))
    QgsSettings().setValue(common.RUN_FOLDER, str(__import__("pathlib").Path(QgsProcessingUtils.tempFolder())))
    assert common.run_root() == str(tmp_path / "home" / common.RUNS_IN_HOME)  # the old temporary default: no
    QgsSettings().setValue(common.RUN_FOLDER, str(tmp_path / "kept"))
    assert common.run_root() == str(tmp_path / "kept")  # the user's own choice
    project.setFileName(str(tmp_path / "work" / "event.qgz"))
    (tmp_path / "work").mkdir()
    monkeypatch.setattr(common, "is_temporary", lambda folder: False)  # pytest's tmp_path is under /tmp
    assert common.run_root() == str(tmp_path / "work" / common.RUNS_IN_PROJECT)  # beside the saved project


def test_a_run_into_a_temporary_folder_is_warned_about(qgis_iface, isolated_settings, tmp_path):
    from qgis import utils

    from landslide_mapper.ui import common

    bar = qgis_iface.messageBar()
    bar.clear_messages()
    utils.iface = qgis_iface
    _name, folder = common.new_run("Landslide map", "model", str(tmp_path / "runs"))
    assert folder.is_dir() and common.is_temporary(folder)
    warnings = bar.get_messages(Qgis.Warning)
    assert len(warnings) == 1 and "temporary folder" in warnings[0] and str(folder) in warnings[0]
    assert not common.warn_if_temporary(__import__("pathlib").Path.home())
