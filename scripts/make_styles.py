"""Regenerate ui/styles/*.qml, the layer styles Landslide Mapper applies to its outputs.

The styles are built with the PyQGIS renderer API and saved with `saveNamedStyle`, so they are valid for the QGIS
that runs this script (the plugin's minimum, 3.22, is the reference). The .qml files are committed; run this only
after changing a colour or a class here:

    .venv/bin/python scripts/make_styles.py            # or: make styles
    .venv/bin/python scripts/make_styles.py --check    # exit 1 if a committed style differs from this script

Colour conventions follow DESIGN.md "Styles" and the map conventions of the source studies (SAR change: purple =
decrease, green = increase; confusion map: TP green, FP red, FN blue; ground truth white outlines).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_HASH_SEED"] = "0"  # stable XML attribute order, so regenerated styles diff cleanly

from osgeo import gdal  # noqa: E402
from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsUnitTypes,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

STYLES = Path(__file__).resolve().parent.parent / "ui" / "styles"
CATEGORIES = QgsMapLayer.Symbology | QgsMapLayer.Rendering


@dataclass(frozen=True)
class Stop:
    value: float
    color: str  # #rrggbb or #aarrggbb (Qt notation)
    label: str


@dataclass(frozen=True)
class Ramp:
    """A singleband pseudocolor style on band 1 with fixed limits (never stretched to the data)."""

    stops: tuple[Stop, ...]
    clip: bool  # True: values outside [first, last] stop are not drawn (transparent)


@dataclass(frozen=True)
class Palette:
    """A paletted (unique values) style on band 1; values not listed (0 = background/nodata) stay transparent."""

    classes: tuple[Stop, ...]


@dataclass(frozen=True)
class Outline:
    """A polygon style with no fill and a coloured outline."""

    color: str
    width_mm: float


@dataclass(frozen=True)
class Rgb:
    """A multiband colour style: bands 1, 2, 3 as red, green, blue, each stretched linearly over a fixed range.

    processing_provider/base.py `RGB_STYLES` re-points the three channels at the bands named in `bands`.
    """

    bands: tuple[str, str, str]
    ranges: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


# Names are the ui/styles/<name>.qml files that processing_provider/base.py `style_output(..., qml)` refers to.
STYLE_DEFINITIONS: dict[str, Ramp | Palette | Outline] = {
    "confusion": Palette(
        (
            Stop(1, "#1a9641", "True positive (detected landslide)"),
            Stop(2, "#e31a1c", "False positive"),
            Stop(3, "#2c7bb6", "False negative (missed)"),
            Stop(4, "#50c8c8c8", "True negative"),  # light grey at ~30 % opacity
        )
    ),
    "dndvi": Ramp(
        (
            Stop(-0.6, "#8c2d04", "-0.6 vegetation loss"),
            Stop(-0.3, "#d9713a", "-0.3"),
            Stop(0.0, "#ffffbf", "0 no change"),
            Stop(0.3, "#91cf60", "0.3"),
            Stop(0.6, "#1a9850", "0.6 vegetation gain"),
        ),
        clip=False,
    ),
    "sar_change": Ramp(
        (
            Stop(-6.0, "#762a83", "-6 dB decrease"),
            Stop(-3.0, "#af8dc3", "-3 dB"),
            Stop(0.0, "#f7f7f7", "0 dB no change"),
            Stop(3.0, "#7fbf7b", "+3 dB"),
            Stop(6.0, "#1b7837", "+6 dB increase"),
        ),
        clip=False,
    ),
    "probability": Ramp(
        (
            Stop(0.5, "#ffff66", "0.5 (threshold)"),
            Stop(0.75, "#fd8d3c", "0.75"),
            Stop(1.0, "#bd0026", "1.0 landslide certain"),
        ),
        clip=True,  # below 0.5 is not drawn
    ),
    "mask": Palette((Stop(1, "#f03b20", "Landslide"),)),
    # Sentinel-2 composites (reflectance ×10⁴): 0–3000 keeps forest, fields and fresh bare-soil scars readable;
    # NIR gets 0–5000 as healthy vegetation reflects 0.3–0.5 there (red in false colour, scars cyan-grey).
    "s2_true_colour": Rgb(("B04", "B03", "B02"), ((0, 3000), (0, 3000), (0, 3000))),
    "s2_false_colour": Rgb(("B08", "B04", "B03"), ((0, 5000), (0, 3000), (0, 3000))),
    # Two predictions A and B against the same truth (e.g. ensemble vs single model): codes of
    # core/metrics.py compare_predictions (COMPARISON_CLASSES); 8 = both right, no landslide, and 0 = nodata stay
    # transparent.
    "comparison": Palette(
        (
            Stop(1, "#1a9641", "Both detect the landslide"),
            Stop(2, "#80cdc1", "Only A detects (B misses)"),
            Stop(3, "#dfc27d", "Only B detects (A misses)"),
            Stop(4, "#2c7bb6", "Both miss the landslide"),
            Stop(5, "#e31a1c", "Both give a false alarm"),
            Stop(6, "#f781bf", "False alarm of A only"),
            Stop(7, "#984ea3", "False alarm of B only"),
        )
    ),
    "truth_outline": Outline("#ffffff", 0.2),  # thin: at full-scene scale small landslides stay visible
    "predicted_polygons": Outline("#ffff00", 0.3),
}

RENDERER_TYPES = {Ramp: "singlebandpseudocolor", Palette: "paletted", Outline: "singleSymbol", Rgb: "multibandcolor"}


def _sample_raster(folder: Path, name: str, gdal_type: int, count: int = 1) -> QgsRasterLayer:
    path = folder / f"{name}.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 4, 4, count, gdal_type)
    ds.SetGeoTransform((0, 10, 0, 40, 0, -10))
    if count == 1:
        ds.GetRasterBand(1).Fill(1)
    else:  # varied values: GDAL's statistics for the RGB renderer complain about a constant band
        for i in range(1, count + 1):
            ds.GetRasterBand(i).WriteRaster(0, 0, 4, 4, bytes(range(16)) * 4, buf_type=gdal.GDT_Float32)
    ds = None
    layer = QgsRasterLayer(str(path), name)
    if not layer.isValid():
        raise RuntimeError(f"could not open sample raster {path}")
    return layer


def _color(code: str) -> QColor:
    color = QColor(code)
    if not color.isValid():
        raise ValueError(f"bad colour {code}")
    return color


def ramp_renderer(layer: QgsRasterLayer, ramp: Ramp) -> QgsSingleBandPseudoColorRenderer:
    lo, hi = ramp.stops[0].value, ramp.stops[-1].value
    color_ramp = QgsColorRampShader(lo, hi)
    color_ramp.setColorRampType(QgsColorRampShader.Interpolated)
    color_ramp.setClassificationMode(QgsColorRampShader.Continuous)
    color_ramp.setClip(ramp.clip)
    color_ramp.setColorRampItemList(
        [QgsColorRampShader.ColorRampItem(s.value, _color(s.color), s.label) for s in ramp.stops]
    )
    shader = QgsRasterShader(lo, hi)
    shader.setRasterShaderFunction(color_ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.None_)  # fixed limits: never re-stretched to the layer's statistics
    renderer.setMinMaxOrigin(origin)
    return renderer


def palette_renderer(layer: QgsRasterLayer, palette: Palette) -> QgsPalettedRasterRenderer:
    classes = [QgsPalettedRasterRenderer.Class(int(c.value), _color(c.color), c.label) for c in palette.classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def rgb_renderer(layer: QgsRasterLayer, rgb: Rgb) -> QgsMultiBandColorRenderer:
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, ((lo, hi), setter) in enumerate(zip(rgb.ranges, setters), start=1):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        enhancement.setMinimumValue(lo)
        enhancement.setMaximumValue(hi)
        setter(enhancement)
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.None_)  # fixed stretch: the same look for every date and place
    renderer.setMinMaxOrigin(origin)
    return renderer


def outline_renderer(outline: Outline) -> QgsSingleSymbolRenderer:
    symbol = QgsFillSymbol.createSimple(
        {"style": "no", "outline_style": "solid", "outline_color": outline.color,
         "outline_width": str(outline.width_mm), "outline_width_unit": "MM", "joinstyle": "round"}
    )
    layer = symbol.symbolLayer(0)
    layer.setBrushStyle(Qt.NoBrush)
    layer.setStrokeColor(_color(outline.color))
    layer.setStrokeWidth(outline.width_mm)
    layer.setStrokeWidthUnit(QgsUnitTypes.RenderMillimeters)
    return QgsSingleSymbolRenderer(symbol)


def build_style(name: str, definition, folder: Path) -> QgsMapLayer:
    """A throwaway layer of the right kind carrying the style `definition`."""
    if isinstance(definition, Outline):
        layer = QgsVectorLayer("Polygon?crs=EPSG:4326", name, "memory")
        layer.setRenderer(outline_renderer(definition))
    elif isinstance(definition, Palette):
        layer = _sample_raster(folder, name, gdal.GDT_Byte)
        layer.setRenderer(palette_renderer(layer, definition))
    elif isinstance(definition, Rgb):
        layer = _sample_raster(folder, name, gdal.GDT_Float32, count=3)
        layer.setRenderer(rgb_renderer(layer, definition))
    else:
        layer = _sample_raster(folder, name, gdal.GDT_Float32)
        layer.setRenderer(ramp_renderer(layer, definition))
    return layer


def write_styles(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, definition in STYLE_DEFINITIONS.items():
            layer = build_style(name, definition, Path(tmp))
            target = out_dir / f"{name}.qml"
            message, ok = layer.saveNamedStyle(str(target), CATEGORIES)
            if not ok:
                raise RuntimeError(f"saving {target} failed: {message}")
            check_style(target, definition, Path(tmp))
            written.append(target)
            del layer
    return written


def check_style(path: Path, definition, folder: Path) -> None:
    """Load `path` on a fresh layer of the right kind and check the renderer type QGIS builds from it."""
    layer = (
        QgsVectorLayer("Polygon?crs=EPSG:4326", "check", "memory")
        if isinstance(definition, Outline)
        else _sample_raster(folder, f"check_{path.stem}", gdal.GDT_Float32, 3 if isinstance(definition, Rgb) else 1)
    )
    message, ok = layer.loadNamedStyle(str(path))
    expected = RENDERER_TYPES[type(definition)]
    if not ok or layer.renderer() is None or layer.renderer().type() != expected:
        got = layer.renderer().type() if layer.renderer() else None
        raise RuntimeError(f"{path} does not load as a {expected} style (ok={ok}, got {got}): {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=STYLES, help="folder for the .qml files (default ui/styles)")
    parser.add_argument("--check", action="store_true", help="compare with the committed styles instead of writing")
    args = parser.parse_args(argv)

    app = QgsApplication([], False)
    app.initQgis()
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                fresh = write_styles(Path(tmp))
                stale = [p.name for p in fresh if not (STYLES / p.name).exists()
                         or (STYLES / p.name).read_text() != p.read_text()]
            if stale:
                print("out of date (run scripts/make_styles.py):", ", ".join(stale))
                return 1
            print(f"{len(fresh)} styles up to date")
            return 0
        for path in write_styles(args.out):
            print(path)
        return 0
    finally:
        app.exitQgis()


if __name__ == "__main__":
    sys.exit(main())
