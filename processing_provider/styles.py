"""The style catalogue: which ui/styles/*.qml fits which output or band, and applying it to a layer (used by the
Processing algorithms when their outputs load, and by the docks)."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingLayerPostProcessorInterface, QgsRasterLayer, QgsVectorLayer

STYLES = Path(__file__).resolve().parent.parent / "ui" / "styles"


# Menu action → (qml, bands it is meant for, in order of preference)
BAND_STYLES = {"dndvi": ("dndvi.qml", ["dNDVI"]), "sar_change": ("sar_change.qml", ["dVH", "dVV"])}
# Menu action → (style name for people, values the style's ramp spans, the band values it can mean at most)
STYLE_RANGES = {"dndvi": ("dNDVI", (-0.6, 0.6), (-2.0, 2.0)), "sar_change": ("SAR change (dB)", (-6.0, 6.0),
                                                                             (-60.0, 60.0))}

# Stack bands worth showing first, with their style: vegetation loss, then SAR change.
STACK_STYLES = [("dNDVI", "dndvi.qml"), ("dVH", "sar_change.qml"), ("dVV", "sar_change.qml")]
# RGB styles of Sentinel-2 composites: the .qml holds the stretch for bands 1–3, re-pointed here at these bands by name.
RGB_STYLES = {"s2_true_colour.qml": ("B04", "B03", "B02"), "s2_false_colour.qml": ("B08", "B04", "B03")}


def _band_names(layer) -> list[str]:
    # QGIS shows bands as "Band 3: dNDVI": the part after the colon is our catalogue name.
    return [layer.bandName(i).split(": ", 1)[-1] for i in range(1, layer.bandCount() + 1)]


def apply_rgb_style(layer, qml: str) -> bool:
    """Load an RGB style and point its red/green/blue at the bands it names; False if the layer lacks one."""
    names = _band_names(layer)
    wanted = RGB_STYLES[qml]
    if not all(b in names for b in wanted):
        return False
    layer.loadNamedStyle(str(STYLES / qml))
    renderer = layer.renderer().clone()
    renderer.setRedBand(names.index(wanted[0]) + 1)
    renderer.setGreenBand(names.index(wanted[1]) + 1)
    renderer.setBlueBand(names.index(wanted[2]) + 1)
    layer.setRenderer(renderer)  # set, not changed in place: the legend follows
    return True


def show_band(layer, band: int) -> None:
    """Point a single-band renderer at `band` through setRenderer, so the layer tree's legend names the band
    drawn (changed in place it would keep saying "Band 1: pre_VV (Gray)")."""
    renderer = layer.renderer().clone()
    renderer.setBand(band)
    layer.setRenderer(renderer)


def apply_s2_styles(layer) -> None:
    """True colour on a Sentinel-2 composite, with false colour (NIR-red-green) kept as a second named style to
    switch to (Layer Properties ▸ Style, or the layer's context menu ▸ Styles)."""
    manager = layer.styleManager()
    applied = []
    for qml, name in (("s2_false_colour.qml", "false colour (B08, B04, B03)"),
                      ("s2_true_colour.qml", "true colour (B04, B03, B02)")):
        if apply_rgb_style(layer, qml):
            manager.addStyleFromLayer(name)
            applied.append(name)
    if applied:
        manager.setCurrentStyle(applied[-1])


def apply_style(layer, qml: str | None) -> None:
    """Style a layer from ui/styles; `None` on a change stack picks its dNDVI or SAR-change band, "s2_composite"
    gives Sentinel-2 true and false colour."""
    if qml == "s2_composite" and isinstance(layer, QgsRasterLayer):
        apply_s2_styles(layer)
    elif qml is None and isinstance(layer, QgsRasterLayer):
        names = _band_names(layer)
        for band, style in STACK_STYLES:
            if band in names:
                layer.loadNamedStyle(str(STYLES / style))
                show_band(layer, names.index(band) + 1)
                break
    elif qml is not None:
        layer.loadNamedStyle(str(STYLES / qml))
    layer.triggerRepaint()


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies a style from ui/styles to an output layer once QGIS has loaded it."""

    def __init__(self, qml: str | None):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (Qt naming)
        if isinstance(layer, (QgsRasterLayer, QgsVectorLayer)):
            apply_style(layer, self.qml)


def class_style_table(layer, classes: list[dict] | None = None) -> list[tuple[int, str, str]]:
    """(value, name, colour) of a class map or class polygons: `classes` (a package's), else the raster's own."""
    if classes:
        return [(int(c["value"]), str(c["name"]), str(c.get("color") or "#808080")) for c in classes]
    if isinstance(layer, QgsRasterLayer):
        from ..core.labels import raster_class_table

        return [(v, n, col) for v, (n, col) in sorted(raster_class_table(layer.source()).items())]
    return []


def apply_class_style(layer, classes: list[dict] | None = None) -> bool:
    """A class map as a paletted layer (one legend entry per class, named, in the package's colours); class
    polygons categorised by their `class` field the same way. False when no class table is known."""
    from qgis.core import (QgsCategorizedSymbolRenderer, QgsFillSymbol, QgsPalettedRasterRenderer,
                           QgsRendererCategory)
    from qgis.PyQt.QtGui import QColor

    table = class_style_table(layer, classes)
    if not table:
        return False
    if isinstance(layer, QgsRasterLayer):
        entries = []
        for value, name, colour in table:
            qcolour = QColor(colour[:7])
            if len(colour) == 9:  # #rrggbbaa: the class table's own transparency (e.g. background)
                qcolour.setAlpha(int(colour[7:9], 16))
            entries.append(QgsPalettedRasterRenderer.Class(value, qcolour, name))
        layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries))
    elif isinstance(layer, QgsVectorLayer) and layer.fields().indexOf("class") >= 0:
        categories = []
        for value, name, colour in table:
            symbol = QgsFillSymbol.createSimple({"color": colour[:7], "outline_color": "#333333",
                                                 "outline_width": "0.2"})
            categories.append(QgsRendererCategory(value, symbol, name))
        layer.setRenderer(QgsCategorizedSymbolRenderer("class", categories))
    else:
        return False
    layer.triggerRepaint()
    return True


class ClassStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a class map or class polygons from a class table once QGIS has loaded them."""

    def __init__(self, classes: list[dict] | None = None):
        super().__init__()
        self.classes = classes

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (Qt naming)
        apply_class_style(layer, self.classes)
