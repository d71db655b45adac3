"""Small things every dock shares: icons, help links, remembered settings, run folders and result groups."""
from __future__ import annotations

import re
import tempfile
from datetime import datetime
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsMessageLog,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QEvent, QObject, Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon
from qgis.gui import QgsScrollArea
from qgis.PyQt.QtWidgets import (
    QAbstractScrollArea,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "ui" / "icons"
README = ROOT / "README.md"
SETTINGS = "landslide_mapper"
RECENT_PACKAGES = f"{SETTINGS}/recent_packages"
RUN_FOLDER = f"{SETTINGS}/run_folder"
MAX_RECENT = 8

ERROR_STYLE = "color: #b00020; font-weight: bold;"
OK_STYLE = "color: #1a7f37;"


def icon(name: str) -> QIcon:
    """One of the plugin's own SVG icons (ui/icons/<name>.svg)."""
    return QIcon(str(ICONS / f"{name}.svg"))


def help_url(section: str = "") -> QUrl:
    """The README, opened at a section anchor as GitHub-style renderers name them ('Model dock' → model-dock)."""
    url = QUrl.fromLocalFile(str(README))
    if section:
        url.setFragment(re.sub(r"[^a-z0-9 -]", "", section.lower()).strip().replace(" ", "-"))
    return url


def open_help(section: str = "") -> bool:
    return QDesktopServices.openUrl(help_url(section))


def help_button(section: str, parent=None) -> QToolButton:
    """A '?' button that opens the README section explaining the widget it sits on."""
    button = QToolButton(parent)
    button.setIcon(icon("help"))
    button.setAutoRaise(True)
    button.setToolTip(f"Help: README ▸ {section}")
    button.clicked.connect(lambda: open_help(section))
    return button


def status_label(parent=None) -> QLabel:
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.LinksAccessibleByMouse)  # people copy messages
    label.setOpenExternalLinks(True)
    return label


def add_run_row(owner, body, layout, icon_name: str, text: str, tooltip: str = "") -> None:
    """Progress bar, Run and Cancel buttons and a status line, as `owner.progress/run_button/cancel_button/status`.

    Every dock runs its work the same way, so they share this row; `owner.run` and `owner.cancel` are connected.
    """
    footer = getattr(owner, "run_footer", None)  # docks pin the row under their scroll area (scrolling_body)
    if footer is not None:
        layout, body = footer, footer.parentWidget()
    row = QHBoxLayout()
    owner.progress = QProgressBar(body)
    owner.progress.setRange(0, 100)
    owner.progress.setValue(0)
    owner.run_button = QPushButton(icon(icon_name), text, body)
    if tooltip:
        owner.run_button.setToolTip(tooltip)
    owner.run_button.clicked.connect(owner.run)
    owner.cancel_button = QPushButton("Cancel", body)
    owner.cancel_button.setEnabled(False)
    owner.cancel_button.clicked.connect(owner.cancel)
    row.addWidget(owner.progress, 1)
    row.addWidget(owner.run_button)
    row.addWidget(owner.cancel_button)
    layout.addLayout(row)
    owner.status = status_label(body)
    layout.addWidget(owner.status)


def report_failure(owner, error: str, canceled_text: str) -> None:
    """A failed or canceled background run: reset the progress bar, say why, and tell listeners."""
    owner.progress.setValue(0)
    show_status(owner.status, canceled_text if error == "Canceled." else error, error=True)
    owner.runFinished.emit(False, error)


def show_status(label: QLabel, text: str, error: bool = False) -> None:
    label.setStyleSheet(ERROR_STYLE if error else "")
    label.setText(text)


# -- remembered choices ----------------------------------------------------------------------------------------
def recent_packages() -> list[str]:
    value = QgsSettings().value(RECENT_PACKAGES, [])
    paths = [value] if isinstance(value, str) else list(value or [])
    return [p for p in paths if p and Path(p).is_file()]


def remember_package(path: str) -> list[str]:
    paths = [str(path)] + [p for p in recent_packages() if p != str(path)]
    QgsSettings().setValue(RECENT_PACKAGES, paths[:MAX_RECENT])
    return paths[:MAX_RECENT]


RUNS_IN_PROJECT = "landslide_mapper_runs"  # beside a saved project
RUNS_IN_HOME = "Landslide Mapper runs"  # under the user's home while the project is not saved


def is_temporary(folder: str | Path) -> bool:
    """Whether a folder lies in a temporary folder (QGIS's Processing one, the system's): gone after a restart."""
    try:
        path = Path(folder).expanduser().resolve()
    except (OSError, RuntimeError):
        return False
    temporary = {Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve(), Path("/var/tmp").resolve()}
    try:
        temporary.add(Path(QgsProcessingUtils.tempFolder()).resolve().parent)
    except (OSError, RuntimeError):
        pass
    return any(path == t or t in path.parents for t in temporary)


def _in_processing_temp(folder: str) -> bool:
    """A folder inside one of QGIS's temporary Processing folders (/tmp/processing_XXXX), the old default."""
    try:
        parts = Path(folder).resolve().relative_to(Path(tempfile.gettempdir()).resolve()).parts
    except (ValueError, OSError, RuntimeError):
        return False
    return bool(parts) and parts[0].startswith("processing_")


def run_root() -> str:
    """Where runs write their files, a folder the user keeps: beside the project when it is saved, else the
    folder chosen last time, else ~/Landslide Mapper runs. QGIS's temporary Processing folder (the default of
    earlier versions) is not offered again."""
    home = QgsProject.instance().homePath()
    if home and not is_temporary(home):
        return str(Path(home) / RUNS_IN_PROJECT)
    remembered = QgsSettings().value(RUN_FOLDER, "") or ""
    if remembered and not _in_processing_temp(remembered):
        return remembered
    return str(Path.home() / RUNS_IN_HOME)


def warn_if_temporary(folder: str | Path) -> bool:
    """Say in QGIS's message bar (and log) that a run writes into a temporary folder; True when it does."""
    if not is_temporary(folder):
        return False
    text = (f"Results are written to {folder}, a temporary folder: they are lost when it is cleaned (at the latest "
            f"after a restart). Choose an output folder you keep in the panel.")
    QgsMessageLog.logMessage(text, "Landslide Mapper", Qgis.Warning)
    from qgis import utils

    bar = getattr(getattr(utils, "iface", None), "messageBar", None)
    if callable(bar):
        try:
            bar().pushMessage("Landslide Mapper", text, level=Qgis.Warning, duration=15)
        except (AttributeError, TypeError, RuntimeError):
            pass
    return True


def remember_run_root(folder: str) -> None:
    QgsSettings().setValue(RUN_FOLDER, folder)


def new_run(kind: str, subject: str, root: str | None = None) -> tuple[str, Path]:
    """(display name, fresh folder) of one run: 'Landslide map model (2024-05-01 14:03:22)' and a folder for it."""
    when = datetime.now()
    name = f"{kind} {subject} ({when:%Y-%m-%d %H:%M:%S})"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{kind}_{subject}").strip("_")[:60]
    base = Path(root or run_root()) / f"{slug}_{when:%Y%m%d_%H%M%S}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}_{n}")
    folder.mkdir(parents=True)
    warn_if_temporary(folder)
    return name, folder


# -- results into the layer tree ---------------------------------------------------------------------------------
def result_group(name: str, project: QgsProject | None = None) -> QgsLayerTreeGroup:
    """A new group at the top of the layer tree, named after the run."""
    project = project or QgsProject.instance()
    return project.layerTreeRoot().insertGroup(0, name)


def load_layer(path: str, name: str) -> QgsMapLayer | None:
    """A raster or vector layer from an output file, or None when QGIS cannot open it."""
    layer = QgsRasterLayer(str(path), name)
    if not layer.isValid():
        layer = QgsVectorLayer(str(path), name, "ogr")
    return layer if layer.isValid() else None


def add_to_group(group: QgsLayerTreeGroup, layers: list[QgsMapLayer], project: QgsProject | None = None) -> None:
    """Add layers to `group` in drawing order (first = on top)."""
    project = project or QgsProject.instance()
    for layer in layers:
        project.addMapLayer(layer, False)
        group.addLayer(layer)


def layer_source(layer: QgsMapLayer | None) -> str | None:
    """What an algorithm parameter should get for a layer: its source (thread-safe, unlike the layer object)."""
    return layer.source() if layer is not None else None


DOCK_MAX_MIN_WIDTH = 520  # px: a dock never asks for more than this, whatever a widget would like
COMBO_CHARACTERS = 18  # layer and option lists show this many characters at least, the rest in their popup


def scrolling_body(dock) -> tuple[QWidget, QVBoxLayout]:
    """The dock's content widget inside a vertical-only scroll area, and its vertical layout.

    Under the scroll area sits `dock.run_footer`, where `add_run_row` pins the progress bar, Run/Cancel and the
    status line: they stay in view however long the form is. Text wraps instead of scrolling sideways, and the dock
    keeps the minimum width that shows every control (see `fit_dock_width`).
    """
    outer = QWidget()
    outer_layout = QVBoxLayout(outer)
    outer_layout.setContentsMargins(0, 0, 0, 0)
    outer_layout.setSpacing(0)
    body = QWidget()
    scroll = QgsScrollArea(outer)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setWidget(body)
    outer_layout.addWidget(scroll, 1)
    footer = QWidget(outer)
    footer.setObjectName("runFooter")
    footer_layout = QVBoxLayout(footer)
    footer_layout.setContentsMargins(9, 4, 9, 6)
    outer_layout.addWidget(footer)
    dock.setWidget(outer)
    dock.scroll_area = scroll
    dock.run_footer = footer_layout
    fitter = _DockFitter(dock, body)
    body.installEventFilter(fitter)
    dock._fitter = fitter  # keep the Python object alive with the dock
    return body, QVBoxLayout(body)


def fit_dock_width(dock) -> int:
    """Labels wrap, form labels go above their field when narrow, lists show COMBO_CHARACTERS, and the dock's
    minimum width becomes what its widest control needs (no horizontal scrolling, nothing cut off)."""
    outer = dock.widget()
    if outer is None:
        return 0
    form_labels = set()
    longest = DOCK_MAX_MIN_WIDTH - 80  # a form label wider than this would set the dock's width: it wraps instead
    for form in outer.findChildren(QFormLayout):
        labels = [form.itemAt(row, QFormLayout.LabelRole) for row in range(form.rowCount())]
        labels = [item.widget() for item in labels if item is not None and isinstance(item.widget(), QLabel)]
        too_long = [label for label in labels if label.fontMetrics().horizontalAdvance(label.text()) > longest]
        # labels above their fields: a long one on its own, wrapped, across the whole width
        form.setRowWrapPolicy(QFormLayout.WrapAllRows if too_long else QFormLayout.WrapLongRows)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form_labels.update(label for label in labels if label not in too_long)
    for label in outer.findChildren(QLabel):
        if label in form_labels:
            label.setWordWrap(False)
        elif label.text() and not label.pixmap() and not label.wordWrap():
            label.setWordWrap(True)
    for combo in outer.findChildren(QComboBox):
        if combo.sizeAdjustPolicy() != QComboBox.AdjustToMinimumContentsLengthWithIcon:
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(COMBO_CHARACTERS)
    for area in outer.findChildren(QAbstractScrollArea):
        if area is not getattr(dock, "scroll_area", None):
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
    scroll = getattr(dock, "scroll_area", None)
    body = scroll.widget() if scroll is not None else outer
    bar = dock.style().pixelMetric(QStyle.PM_ScrollBarExtent)
    needed = max(body.minimumSizeHint().width() + bar, outer.minimumSizeHint().width()) + 4
    width = min(needed, DOCK_MAX_MIN_WIDTH)
    if dock.minimumWidth() != width:
        dock.setMinimumWidth(width)
    return width


class _DockFitter(QObject):
    """Re-fits a dock's minimum width when it is shown and whenever its body's layout changes."""

    def __init__(self, dock, body):
        super().__init__(body)
        self.dock = dock
        self._busy = False

    def eventFilter(self, watched, event):  # noqa: N802 (Qt)
        if event.type() in (QEvent.Show, QEvent.LayoutRequest) and not self._busy:
            self._busy = True
            try:
                fit_dock_width(self.dock)
            finally:
                self._busy = False
        return False
