"""Small things every dock shares: icons, help links, remembered settings, run folders and result groups."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from qgis.core import (
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon
from qgis.gui import QgsScrollArea
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QToolButton, QVBoxLayout, QWidget

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


def run_root() -> str:
    """Where runs write their files: the folder chosen last time, else the Processing temporary folder."""
    return QgsSettings().value(RUN_FOLDER, "") or QgsProcessingUtils.tempFolder()


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


def scrolling_body(dock) -> tuple[QWidget, QVBoxLayout]:
    """The dock's content widget inside a scroll area (docks are often short), and its vertical layout."""
    body = QWidget()
    scroll = QgsScrollArea(dock)
    scroll.setWidgetResizable(True)
    scroll.setWidget(body)
    dock.setWidget(scroll)
    return body, QVBoxLayout(body)
