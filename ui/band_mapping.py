"""Which band of which project raster feeds each input band of a model: found by band name, editable by hand.

The mapping ends up as parameters of the `predict` algorithm (INPUT, OTHER_INPUTS, BAND_MAPPING), so a run set up
here can be repeated in batch mode or with qgis_process.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox, QgsRasterBandComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QGridLayout, QLabel, QWidget

from .common import ERROR_STYLE, OK_STYLE

GUESS_STYLE = "color: #9a6700; font-weight: bold;"  # amber: usable once the person confirms it

PRE_WORDS = {"pre", "before"}
POST_WORDS = {"post", "after"}


@dataclass
class RasterBands:
    """What auto-mapping needs to know of a raster layer."""

    key: str  # layer id
    name: str  # layer name
    bands: list[str]  # band descriptions, '' where a band has none


def band_descriptions(layer: QgsRasterLayer) -> list[str]:
    """GDAL band descriptions of a raster layer (our catalogue names such as 'post_VV'); '' where missing."""
    names = []
    for i in range(1, layer.bandCount() + 1):
        label = layer.bandName(i)  # QGIS shows "Band 3: dNDVI"; after the colon is the GDAL description
        names.append(label.split(": ", 1)[1] if ": " in label else "")
    return names


def _epoch(layer_name: str) -> str | None:
    words = set(re.split(r"[^a-z0-9]+", layer_name.lower()))
    if words & PRE_WORDS and not words & POST_WORDS:
        return "pre"
    if words & POST_WORDS and not words & PRE_WORDS:
        return "post"
    return None


def auto_map(inputs: list[str], rasters: list[RasterBands]) -> dict[str, tuple[str, int] | None]:
    """For each model input band, the (layer key, 1-based band) that supplies it, or None.

    A band whose description is the input's name wins (rasters with more such bands first, so a change stack is
    preferred over scattered layers); else `pre_X` / `post_X` is taken from band `X` of a layer whose name says
    pre/before or post/after (e.g. band 'VV' of layer 'pre_s1' for 'pre_VV').
    """
    wanted = [b.lower() for b in inputs]
    ranked = sorted(rasters, key=lambda r: -sum(d.lower() in wanted for d in r.bands))
    result: dict[str, tuple[str, int] | None] = {}
    for name in inputs:
        found = None
        for r in ranked:
            lower = [d.lower() for d in r.bands]
            if name.lower() in lower:
                found = (r.key, lower.index(name.lower()) + 1)
                break
        if found is None and "_" in name and name.split("_", 1)[0] in ("pre", "post"):
            epoch, base = name.split("_", 1)
            for r in ranked:
                lower = [d.lower() for d in r.bands]
                if _epoch(r.name) == epoch and base.lower() in lower:
                    found = (r.key, lower.index(base.lower()) + 1)
                    break
        result[name] = found
    return result


def positional_guess(inputs: list[str], rasters: list[RasterBands],
                     found: dict[str, tuple[str, int] | None]) -> dict[str, tuple[str, int]] | None:
    """When no input band was found by name, bands 1…n of a raster with exactly the model's n bands, in order —
    a guess (e.g. an ArcGIS export named its bands B1…Bn) that the person must confirm; else None.

    A raster none of whose bands has a description is preferred, then the first in the project's order.
    """
    if not inputs or any(hit is not None for hit in found.values()):
        return None
    fits = [r for r in rasters if len(r.bands) == len(inputs)]
    fits.sort(key=lambda r: any(r.bands))  # stable: unnamed rasters first
    if not fits:
        return None
    return {name: (fits[0].key, i) for i, name in enumerate(inputs, start=1)}


def mapping_parameters(choice: dict[str, tuple[QgsRasterLayer, int]]) -> dict:
    """`predict` parameters for a complete mapping: INPUT, and OTHER_INPUTS/BAND_MAPPING when it is needed.

    The raster of the first input band defines the output grid. When every band comes from one raster and is
    named as the model expects, the plain stack is passed, as a user would in the toolbox.
    """
    layers: list[QgsRasterLayer] = []
    for layer, _ in choice.values():
        if layer not in layers:
            layers.append(layer)
    params = {"INPUT": layers[0].source()}
    if len(layers) == 1:
        descriptions = [d.lower() for d in band_descriptions(layers[0])]
        if all(0 < band <= len(descriptions) and descriptions[band - 1] == name.lower()
               for name, (_, band) in choice.items()):
            return params
    params["OTHER_INPUTS"] = [layer.source() for layer in layers[1:]]
    params["BAND_MAPPING"] = ",".join(f"{name}={layers.index(layer) + 1}:{band}"
                                      for name, (layer, band) in choice.items())
    return params


class BandMappingWidget(QWidget):
    """One row per model input band: its name and meaning, a raster layer and a band; red text when incomplete."""

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setColumnStretch(1, 3)
        self.grid.setColumnStretch(2, 2)
        self.inputs: list[str] = []
        self.rows: dict[str, tuple[QgsMapLayerComboBox, QgsRasterBandComboBox]] = {}
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.guessed_from: str | None = None  # layer name while the rows hold an unconfirmed positional guess
        self._filling = False
        self.confirm = QCheckBox("The band order is right: use this mapping", self)
        self.confirm.setToolTip("No band was found by name, so the bands were taken in order from a layer with "
                                "exactly the model's number of bands. Tick once you have checked the order.")
        self.confirm.setVisible(False)
        self.confirm.toggled.connect(self._on_confirm)

    def set_inputs(self, inputs: list[str], meanings: dict[str, str] | None = None) -> None:
        """Show one row per input band, then map them automatically."""
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None and item.widget() not in (self.message, self.confirm):
                item.widget().deleteLater()
        self.inputs, self.rows = list(inputs), {}
        for row, name in enumerate(self.inputs):
            label = QLabel(f"<b>{name}</b>", self)
            label.setToolTip((meanings or {}).get(name, name))
            layer_box = QgsMapLayerComboBox(self)
            layer_box.setFilters(QgsMapLayerProxyModel.RasterLayer)
            layer_box.setAllowEmptyLayer(True)
            layer_box.setLayer(None)
            layer_box.setToolTip(f"Raster that supplies {name}: {(meanings or {}).get(name, name)}")
            band_box = QgsRasterBandComboBox(self)
            band_box.setShowNotSetOption(True)
            layer_box.layerChanged.connect(band_box.setLayer)
            layer_box.layerChanged.connect(self._on_edit)
            band_box.bandChanged.connect(self._on_edit)
            self.grid.addWidget(label, row, 0)
            self.grid.addWidget(layer_box, row, 1)
            self.grid.addWidget(band_box, row, 2)
            self.rows[name] = (layer_box, band_box)
        self.grid.addWidget(self.message, len(self.inputs), 0, 1, 3)
        self.grid.addWidget(self.confirm, len(self.inputs) + 1, 0, 1, 3)
        self.auto_map()

    def auto_map(self) -> None:
        """Fill every row from the project's raster layers by band name (see `auto_map`)."""
        from qgis.core import QgsProject

        layers = [lyr for lyr in QgsProject.instance().mapLayers().values()
                  if isinstance(lyr, QgsRasterLayer) and lyr.isValid()]
        described = [RasterBands(lyr.id(), lyr.name(), band_descriptions(lyr)) for lyr in layers]
        found = auto_map(self.inputs, described)
        by_id = {lyr.id(): lyr for lyr in layers}
        guess = positional_guess(self.inputs, described, found)
        if guess:
            found = guess
        guessed_from = by_id[next(iter(guess.values()))[0]].name() if guess else None
        self._filling = True  # the band boxes signal a change even with their signals blocked
        for name, (layer_box, band_box) in self.rows.items():
            hit = found.get(name)
            layer_box.blockSignals(True)
            band_box.blockSignals(True)
            layer_box.setLayer(by_id[hit[0]] if hit else None)
            band_box.setLayer(by_id[hit[0]] if hit else None)
            band_box.setBand(hit[1] if hit else -1)
            layer_box.blockSignals(False)
            band_box.blockSignals(False)
        self._filling = False
        self.guessed_from = guessed_from
        self.confirm.blockSignals(True)
        self.confirm.setChecked(False)
        self.confirm.blockSignals(False)
        self._show()

    def is_guess(self) -> bool:
        """The rows hold a positional guess the person has not confirmed yet."""
        return self.guessed_from is not None and not self.confirm.isChecked()

    def set_choice(self, name: str, layer: QgsRasterLayer | None, band: int) -> None:
        layer_box, band_box = self.rows[name]
        layer_box.setLayer(layer)
        band_box.setLayer(layer)
        band_box.setBand(band)
        self._on_edit()

    def choice(self) -> dict[str, tuple[QgsRasterLayer, int] | None]:
        out = {}
        for name, (layer_box, band_box) in self.rows.items():
            layer, band = layer_box.currentLayer(), band_box.currentBand()
            out[name] = (layer, band) if layer is not None and band > 0 else None
        return out

    def missing(self) -> list[str]:
        return [name for name, chosen in self.choice().items() if chosen is None]

    def is_complete(self) -> bool:
        return bool(self.inputs) and not self.missing() and not self.is_guess()

    def _on_confirm(self, *_args) -> None:
        self._show()

    def _on_edit(self, *_args) -> None:
        """A row changed by hand: the mapping is the person's own, no longer a guess."""
        if self._filling:
            return
        self.guessed_from = None
        self._show()

    def _show(self) -> None:
        missing = self.missing()
        self.confirm.setVisible(self.guessed_from is not None)
        if self.guessed_from is not None and not missing:
            order = ", ".join(f"{name} ← band {i}" for i, name in enumerate(self.inputs, start=1))
            if self.confirm.isChecked():
                self.message.setStyleSheet(OK_STYLE)
                self.message.setText(f"All input bands are mapped: by band order from '{self.guessed_from}' "
                                     f"({order}), confirmed.")
            else:
                self.message.setStyleSheet(GUESS_STYLE)
                self.message.setText(
                    f"Guessed: no band is named as the model's, so the bands of '{self.guessed_from}' are taken in "
                    f"order ({order}). Check that this is the order the model was trained on, then tick the box "
                    f"below or pick the bands by hand.")
        elif not self.inputs:
            self.message.clear()
        elif missing:
            self.message.setStyleSheet(ERROR_STYLE)
            self.message.setText(
                f"Missing input band(s): {', '.join(missing)}. Load a raster whose band is described with that "
                f"name (a change stack from 'Build change stack' has them all) or pick a layer and band by hand.")
        else:
            self.message.setStyleSheet(OK_STYLE)
            self.message.setText("All input bands are mapped.")
        self.changed.emit()
