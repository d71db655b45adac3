"""Widgets for an algorithm's options, made by QGIS's own Processing widget wrappers.

A dock lays out by hand only what it treats specially (package, band mapping, extent …); every other parameter of
the algorithm appears here exactly as in the Processing dialog. A parameter that a newer version of an algorithm
adds therefore shows up in the dock by itself, and a value set here means the same as in a batch file.
"""
from __future__ import annotations

from qgis.core import QgsProcessingContext, QgsProcessingParameterDefinition, QgsProject
from qgis.gui import QgsGui, QgsProcessingGui, QgsProcessingParameterWidgetContext
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtWidgets import QFormLayout, QLabel, QWidget


def _as_sources(value, project: QgsProject):
    """Layer ids (what layer widgets return) → file sources, so algorithms running in a thread never touch the
    project's layers."""
    if isinstance(value, str) and project.mapLayer(value) is not None:
        return project.mapLayer(value).source()
    if isinstance(value, (list, tuple)):
        return [_as_sources(v, project) for v in value]
    return value


class ParameterPanel(QWidget):
    """A form with one Processing widget per parameter of `algorithm`, minus `skip` and destinations.

    `advanced`: None = all, True = only advanced parameters, False = only the others; `only`: just these names.
    """

    def __init__(self, algorithm, skip=(), advanced: bool | None = None, canvas=None, parent=None, only=None):
        super().__init__(parent)
        self.algorithm = algorithm
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.wrappers = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        layout.setRowWrapPolicy(QFormLayout.WrapLongRows)  # long labels put their field below, docks are narrow
        widget_context = QgsProcessingParameterWidgetContext()
        widget_context.setProject(QgsProject.instance())
        if canvas is not None:
            widget_context.setMapCanvas(canvas)
        self._widget_context = widget_context
        registry = QgsGui.processingGuiRegistry()
        for param in algorithm.parameterDefinitions() if algorithm is not None else []:
            is_advanced = bool(param.flags() & QgsProcessingParameterDefinition.FlagAdvanced)
            if (param.name() in skip or (only is not None and param.name() not in only) or param.isDestination()
                    or param.flags() & QgsProcessingParameterDefinition.FlagHidden
                    or (advanced is not None and is_advanced != advanced)):
                continue
            wrapper = registry.createParameterWidgetWrapper(param, QgsProcessingGui.Standard)
            if wrapper is None:  # a type without a standard widget: the algorithm's default applies
                continue
            wrapper.setWidgetContext(widget_context)
            widget = wrapper.createWrappedWidget(self.context)
            label = wrapper.createWrappedLabel()
            if label is None:  # check boxes carry their own text
                layout.addRow(widget)
            else:
                label.setToolTip(param.help() or param.description())
                label.setWordWrap(True)
                layout.addRow(label, widget)
            self.wrappers[param.name()] = wrapper
        for wrapper in self.wrappers.values():
            wrapper.postInitialize(list(self.wrappers.values()))
        if not self.wrappers:
            layout.addRow(QLabel("No further options."))

    def names(self) -> list[str]:
        return list(self.wrappers)

    def values(self) -> dict:
        """Parameter values as processing.run takes them; empty optional values are left out."""
        project = QgsProject.instance()
        out = {}
        for name, wrapper in self.wrappers.items():
            value = wrapper.parameterValue()
            if value is None or (isinstance(value, QVariant) and value.isNull()) or value in ("", []):
                continue
            out[name] = _as_sources(value, project)
        return out

    def set_value(self, name: str, value) -> None:
        self.wrappers[name].setParameterValue(value, self.context)

    def widget(self, name: str) -> QWidget:
        return self.wrappers[name].wrappedWidget()
