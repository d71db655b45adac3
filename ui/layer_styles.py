"""Map styles the docks and menu actions apply: change stacks (dNDVI, SAR change), probability, confusion, comparison.

The styles themselves are ui/styles/*.qml (scripts/make_styles.py); `apply_style` of the Processing provider is the
one place that loads them, so a layer looks the same whether it came from the toolbox or from a dock.
"""
from __future__ import annotations

from qgis.core import QgsRasterBandStats, QgsRasterLayer, QgsSingleBandPseudoColorRenderer

from ..processing_provider.styles import BAND_STYLES, STACK_STYLES, STYLE_RANGES, STYLES, apply_style, show_band
from .band_mapping import band_descriptions

DEFAULT_RENDERERS = ("multibandcolor", "singlebandgray")  # what QGIS gives a raster nobody has styled yet


def change_band(layer: QgsRasterLayer) -> str | None:
    """The stack band a change style would show (dNDVI first, then dVH/dVV), or None if the layer has none."""
    names = band_descriptions(layer)
    return next((band for band, _ in STACK_STYLES if band in names), None)


def style_new_stack(layer) -> bool:
    """Style a freshly loaded change stack on its dNDVI or SAR-change band; leaves styled layers alone."""
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid() or change_band(layer) is None:
        return False
    if layer.renderer() is not None and layer.renderer().type() not in DEFAULT_RENDERERS:
        return False  # a saved or hand-made style: keep it
    apply_style(layer, None)
    refresh_legend(layer)
    return True


def refresh_legend(layer) -> None:
    """Make the layer tree's legend show the layer's current renderer (QGIS keeps the old one otherwise)."""
    layer.emitStyleChanged()
    try:
        from qgis import utils

        view = utils.iface.layerTreeView() if utils.iface is not None else None
        if view is not None and hasattr(view, "refreshLayerSymbology"):
            view.refreshLayerSymbology(layer.id())
    except (AttributeError, RuntimeError, TypeError):
        pass


def style_fit(layer: QgsRasterLayer, band: int, kind: str) -> str | None:
    """Why the `kind` style may not fit `band` (its values are not change values), or None when it fits.

    A band named for the style fits; otherwise its sampled range is compared with what the style can mean."""
    label, _ramp, (low, high) = STYLE_RANGES[kind]
    names = band_descriptions(layer)
    name = names[band - 1] if 0 < band <= len(names) else ""
    if name in BAND_STYLES[kind][1]:
        return None
    stats = layer.dataProvider().bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max,
                                                layer.extent(), 250000)
    if stats.minimumValue >= low and stats.maximumValue <= high:
        return None
    return (f"band {band}{f' ({name})' if name else ''} holds values from {stats.minimumValue:g} to "
            f"{stats.maximumValue:g}, outside what a {label} style shows ({low:g} to {high:g}): it may look like one "
            f"colour. Styled as asked; Layer Properties ▸ Symbology changes it back.")


def style_band_as(layer: QgsRasterLayer, kind: str) -> int:
    """Show one band of `layer` with the dNDVI or SAR-change ramp; returns the band used.

    The band named for the style (dNDVI; dVH or dVV) when the layer has one, else the band shown now, else 1.
    """
    qml, preferred = BAND_STYLES[kind]
    names = band_descriptions(layer)
    band = next((names.index(b) + 1 for b in preferred if b in names), None)
    if band is None:
        used = layer.renderer().usesBands() if layer.renderer() is not None else []
        band = used[0] if used else 1
    layer.loadNamedStyle(str(STYLES / qml))
    show_band(layer, band)
    layer.triggerRepaint()
    refresh_legend(layer)
    return band


def style_probability(layer: QgsRasterLayer, threshold: float) -> None:
    """The probability ramp, transparent below the run's threshold (the style's own cut is 0.5)."""
    apply_style(layer, "probability.qml")
    renderer = layer.renderer()
    if not isinstance(renderer, QgsSingleBandPseudoColorRenderer) or abs(threshold - 0.5) < 1e-9:
        return
    shader = renderer.shader()
    function = shader.rasterShaderFunction()
    items = function.colorRampItemList()
    first = items[0]
    items[0] = type(first)(float(threshold), first.color, f"{threshold:.2f} (threshold)")
    items = [items[0]] + [i for i in items[1:] if i.value > threshold]
    function.setColorRampItemList(items)
    function.setMinimumValue(float(threshold))
    shader.setMinimumValue(float(threshold))
    renderer.setClassificationMin(float(threshold))
    layer.triggerRepaint()
