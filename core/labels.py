"""Landslide labels: class tables, polygon sets in any CRS, label rasters, and reading them window by window on a
raster's grid (what chips, metrics and postprocessing need).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import rasterio
from rasterio import features
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import raster
from ..common.errors import InputError


IGNORE = 255


CLASSES = [
    {"value": 0, "name": "background", "color": "#00000000"},
    {"value": 1, "name": "landslide", "color": "#e8702a"},
]


PALETTE = ["#e8702a", "#1f78b4", "#33a02c", "#e31a1c", "#6a3d9a", "#b15928", "#a6cee3", "#b2df8a", "#fb9a99",
           "#fdbf6f", "#cab2d6", "#ffff99"]


@dataclass
class LabelClass:
    """One class of the label layer: the value burnt into label chips, its name and colour, landslide or not."""

    value: int
    name: str
    color: str
    landslide: bool = True


def class_table(values: Sequence[int], names: dict | None = None) -> list[LabelClass]:
    names = names or {}
    return [LabelClass(int(v), names.get(int(v), str(int(v))), PALETTE[k % len(PALETTE)])
            for k, v in enumerate(sorted(set(int(v) for v in values)))]


def parse_class_list(spec) -> list[str] | None:
    """'2' / '2, 3' / 'debris flow; rockfall' / [2, 'x'] → tokens; None or empty → None (= the default)."""
    if spec is None:
        return None
    tokens = spec.replace(";", ",").split(",") if isinstance(spec, str) else [str(t) for t in spec]
    tokens = [t.strip() for t in tokens if t.strip()]
    return tokens or None


def mark_landslide_classes(classes: Sequence[LabelClass], spec, source: str) -> list[LabelClass]:
    """Copy of `classes` with `landslide` set from `spec` (class values or names); None keeps every class."""
    tokens = parse_class_list(spec)
    out = [LabelClass(c.value, c.name, c.color, True) for c in classes]
    if tokens is None:
        return out
    chosen = set()
    for token in tokens:
        hits = [c.value for c in out if c.name.lower() == token.lower()]
        try:
            number = float(token)
            hits += [c.value for c in out if number == c.value]
        except ValueError:
            pass
        if not hits:
            listed = ", ".join(f"{c.value} '{c.name}'" for c in out) or "none"
            raise InputError(f"{source} has no class '{token}' to treat as landslide; its classes are: {listed}.")
        chosen.update(hits)
    for c in out:
        c.landslide = c.value in chosen
    return out


def landslide_lut(classes: Sequence[LabelClass]) -> np.ndarray:
    """Look-up table class value → 0 background / 1 landslide / 255 ignore, for uint8 label arrays."""
    lut = np.zeros(256, dtype=np.uint8)
    for c in classes:
        if 0 < c.value < IGNORE and c.landslide:
            lut[c.value] = 1
    lut[IGNORE] = IGNORE
    return lut


def classes_from_manifest(entries: Sequence[dict]) -> list[LabelClass]:
    """Class table of a manifest; version-1 manifests list background 0 and landslide 1 without flags."""
    return [LabelClass(int(e["value"]), str(e.get("name", e["value"])), str(e.get("color", "#e8702a")),
                       bool(e.get("landslide", True))) for e in entries if 0 < int(e["value"]) < IGNORE]


@dataclass
class PolygonSet:
    """Polygons of one layer reprojected to a grid CRS, with their bounding boxes and one attribute."""

    path: str
    shapes: list  # GeoJSON-like geometries in the grid CRS
    values: list  # the attribute per shape (None when no field was asked for)
    bboxes: np.ndarray  # (n, 4) xmin, ymin, xmax, ymax

    def select(self, window_bounds) -> np.ndarray:
        xmin, ymin, xmax, ymax = window_bounds
        b = self.bboxes
        if not len(b):
            return np.zeros(0, dtype=int)
        return np.flatnonzero((b[:, 0] <= xmax) & (b[:, 2] >= xmin) & (b[:, 1] <= ymax) & (b[:, 3] >= ymin))

    def burn(self, grid, window: Window, values: Sequence[int] | None = None, fill: int = 0,
             dtype: str = "uint8") -> np.ndarray:
        """Rasterise the shapes meeting `window` (burning `values[i]`, default 1) on the window's pixels."""
        h, w = int(window.height), int(window.width)
        transform = grid.window_transform(window)
        hits = self.select(raster_window_bounds(transform, w, h))
        if not len(hits):
            return np.full((h, w), fill, dtype=dtype)
        shapes = [(self.shapes[i], 1 if values is None else int(values[i])) for i in hits]
        return features.rasterize(shapes, out_shape=(h, w), transform=transform, fill=fill, dtype=dtype)


def raster_window_bounds(transform, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0 = transform * (0, 0)
    x1, y1 = transform * (width, height)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def read_polygons(path: str, grid_crs, *, layer: str | None = None, field: str | None = None,
                  what: str = "Label layer") -> PolygonSet:
    """Polygons of a vector layer reprojected (never relabelled) to `grid_crs`, with one attribute per shape."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{what} '{path}' does not exist.")
    try:
        ds = ogr.Open(path)
    except RuntimeError as exc:
        raise InputError(f"Cannot open {what[0].lower() + what[1:]} '{path}': {exc}") from None
    if ds is None:
        raise InputError(f"'{path}' is neither a raster nor a vector layer GDAL/OGR can read.")
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise InputError(f"{what} '{path}' has no layer named '{layer}'.")
    defn = lyr.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if lyr.GetFeatureCount() == 0:
        raise InputError(f"{what} '{path}' is empty: it has no features.")
    if field is not None and field not in fields:
        raise InputError(f"{what} '{path}' has no field '{field}'; its fields are: {', '.join(fields) or 'none'}.")
    target = osr.SpatialReference()
    target.ImportFromWkt(grid_crs.to_wkt())
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    source = lyr.GetSpatialRef()
    if source is None:
        raise InputError(f"{what} '{path}' has no coordinate reference system, so it cannot be reprojected to the "
                         f"raster's; assign its CRS first (QGIS: Assign projection).")
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        transform = None if source.IsSame(target) else osr.CoordinateTransformation(source, target)
    except RuntimeError as exc:
        raise InputError(f"{what} '{path}' is in a CRS ({_crs_label(source)}) that cannot be transformed to the "
                         f"raster's ({_crs_label(target)}): {exc}. Check the layer's CRS.") from None
    shapes, values, boxes = [], [], []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        value = feat.GetField(field) if field is not None else None
        geom = geom.Clone()
        if transform is not None:
            _reproject(geom, transform, feat, source, what, path)
        xmin, xmax, ymin, ymax = geom.GetEnvelope()
        text = geom.ExportToJson()  # None (GDAL: "NaN or Infinity") for non-finite coordinates
        if text is None or not np.all(np.isfinite((xmin, xmax, ymin, ymax))):
            raise InputError(f"{what} '{path}': feature {feat.GetFID()} has coordinates that are not numbers (NaN "
                             f"or infinite), so it has no place on the map. Fix or delete that feature (QGIS: "
                             f"Vertex tool, or 'Check validity'), then run again.")
        shapes.append(json.loads(text))
        values.append(value)
        boxes.append((xmin, ymin, xmax, ymax))
    return PolygonSet(path, shapes, values, np.array(boxes, dtype=float).reshape(-1, 4))


def _crs_label(srs) -> str:
    code = srs.GetAuthorityCode(None)
    return f"{srs.GetAuthorityName(None)}:{code}" if code else (srs.GetName() or "unnamed CRS")


def _reproject(geom, transform, feat, source, what: str, path: str) -> None:
    """Reproject a feature in place, or explain which feature's coordinates do not fit the layer's CRS."""
    xmin, xmax, ymin, ymax = geom.GetEnvelope()
    try:
        geom.Transform(transform)
        problem = None if np.all(np.isfinite(geom.GetEnvelope())) else "they reproject to infinity"
    except RuntimeError as exc:  # PROJ, e.g. "utm: Invalid latitude" for metres in a layer marked as degrees
        problem = str(exc)
    if problem:
        raise InputError(f"{what} '{path}': feature {feat.GetFID()} has coordinates ({xmin:.10g} … {xmax:.10g}, "
                         f"{ymin:.10g} … {ymax:.10g}) that do not fit the layer's CRS {_crs_label(source)} "
                         f"({problem}). The CRS is probably wrong, e.g. metres in a layer marked as degrees: set "
                         f"the right one (QGIS: Layer Properties ▸ Source, or 'Assign projection') and run again.")


@dataclass
class LabelSource:
    """Ground truth as burnable polygons (in the grid CRS) or as a raster, with its class table."""

    path: str
    shapes: list | None = None  # [(geojson geometry, class value)] in grid CRS
    bboxes: np.ndarray | None = None  # (n, 4) xmin, ymin, xmax, ymax per shape
    raster_path: str | None = None
    classes: list[LabelClass] = field(default_factory=list)  # rasters: filled by the export's label survey


def _is_raster(path: str) -> bool:
    try:
        with rasterio.open(path):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not a raster GDAL reads"
        return False


def read_label_polygons(path: str, grid_crs, class_field: str | None = "class",
                        layer: str | None = None, what: str = "Label layer") -> LabelSource:
    """Polygons reprojected to `grid_crs` with a class table built from the class field.

    Numeric field: integer values 1…254 are classes, ≤ 0 is background (not burnt). Text field: each distinct
    text is a class, numbered 1…n in alphabetical order. `class_field=None` burns every feature as class 1
    (exclusion zones, areas of interest).
    """
    polys = read_polygons(path, grid_crs, layer=layer, field=class_field, what=what)
    raw = polys.values if class_field is not None else [1] * len(polys.shapes)
    texts = [v for v in raw if isinstance(v, str) and v.strip()]
    numeric_texts = all(_is_integer_text(v) for v in texts)
    names: dict[int, str] = {}
    if texts and not numeric_texts:
        codes = {t: k + 1 for k, t in enumerate(sorted(set(t.strip() for t in texts)))}
        if len(codes) > IGNORE - 1:
            raise InputError(f"Field '{class_field}' of '{path}' has {len(codes)} distinct texts; at most 254 "
                             f"classes fit in a label chip.")
        values = [codes.get(v.strip()) if isinstance(v, str) and v.strip() else None for v in raw]
        names = {k: t for t, k in codes.items()}
    else:
        values = []
        for v in raw:
            if v is None or (isinstance(v, str) and not v.strip()):
                values.append(None)
                continue
            number = float(v)
            if number <= 0:
                values.append(None)  # background: nothing to burn
                continue
            if number != int(number) or number >= IGNORE:
                raise InputError(f"Field '{class_field}' of '{path}' holds {v}; class values must be whole "
                                 f"numbers from 1 to 254 (0 or less = not a landslide).")
            values.append(int(number))
    shapes, boxes = [], []
    for geom, value, box in zip(polys.shapes, values, polys.bboxes):
        if value is not None:
            shapes.append((geom, value))
            boxes.append(box)
    classes = class_table([v for _, v in shapes], names)
    return LabelSource(path=path, shapes=shapes, bboxes=np.array(boxes, dtype=float).reshape(-1, 4),
                       classes=classes)


def _is_integer_text(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except ValueError:
        return False


def open_labels(path: str, grid, class_field: str | None = "class", layer: str | None = None,
                what: str = "Label layer") -> LabelSource:
    """Labels for the grid of dataset `grid`: a raster (values > 0 = landslide) or polygons with a class field.

    `what` names the layer in messages, e.g. "Truth layer (TRUTH)"."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"Label file '{path}' does not exist.")
    if _is_raster(path):
        with raster.open_raster(path) as src, raster.aligned(src, grid, Resampling.nearest):
            pass  # raises a clear error when the label raster does not overlap the grid
        return LabelSource(path=path, raster_path=path)
    return read_label_polygons(path, grid.crs, class_field, layer, what)


def rasterize_labels(labels: LabelSource, grid, window: Window, grid_transform=None) -> np.ndarray:
    """UInt8 labels (0/1, 255 = unknown) for one window of `grid` (an open rasterio dataset); every class is 1."""
    h, w = int(window.height), int(window.width)
    if labels.raster_path is not None:
        with raster.open_raster(labels.raster_path) as src, raster.aligned(src, grid, Resampling.nearest) as view:
            data, valid = raster.read_valid(view, 1, window)
        out = (data > 0).view(np.uint8)
        out[~valid] = IGNORE
        return out
    transform = grid.window_transform(window)
    hit = hits(labels.bboxes, raster_window_bounds(transform, w, h))
    shapes = [(labels.shapes[i][0], 1) for i in hit]
    if not shapes:
        return np.zeros((h, w), dtype=np.uint8)
    return features.rasterize(shapes, out_shape=(h, w), transform=transform, fill=0, dtype="uint8")


def hits(b: np.ndarray, bounds) -> np.ndarray:
    if b is None or not len(b):
        return np.zeros(0, dtype=int)
    xmin, ymin, xmax, ymax = bounds
    return np.flatnonzero((b[:, 0] <= xmax) & (b[:, 2] >= xmin) & (b[:, 1] <= ymax) & (b[:, 3] >= ymin))


class LabelReader:
    """Class values (uint8; 255 = unknown) of any window of the stack grid, label raster opened once.

    Pixels outside the labelled region (if one is given) are unknown, not background.
    """

    def __init__(self, labels: LabelSource, grid, region: PolygonSet | None = None):
        self.labels, self.grid, self.region = labels, grid, region
        self._src = self._view = self._ctx = None
        if labels.raster_path is not None:
            self._src = raster.open_raster(labels.raster_path)
            self._ctx = raster.aligned(self._src, grid, Resampling.nearest)
            self._view = self._ctx.__enter__()

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._src.close()
            self._ctx = None

    def __call__(self, window: Window) -> np.ndarray:
        h, w = int(window.height), int(window.width)
        if self._view is not None:
            data, valid = raster.read_valid(self._view, 1, window)
            bad = valid & (data >= IGNORE) if data.dtype == np.uint8 else valid & ((data < 0) | (data >= IGNORE))
            if data.dtype.kind == "f":
                bad |= valid & (data != np.round(data))
            if bad.any():
                raise InputError(f"Label raster '{self.labels.path}' holds the value {data[bad].flat[0]}; label "
                                 f"rasters must hold class values 0…254 (0 = background).")
            codes = data.astype(np.uint8)
            codes[~valid] = IGNORE
        else:
            transform = self.grid.window_transform(window)
            hit = hits(self.labels.bboxes, raster_window_bounds(transform, w, h))
            if len(hit):
                # Landslide classes burn last, so they win where polygons of several classes overlap.
                landslide = {c.value for c in self.labels.classes if c.landslide}
                order = sorted(hit, key=lambda i: self.labels.shapes[i][1] in landslide)
                codes = features.rasterize([self.labels.shapes[i] for i in order], out_shape=(h, w),
                                           transform=transform, fill=0, dtype="uint8")
            else:
                codes = np.zeros((h, w), dtype=np.uint8)
        if self.region is not None:
            codes[self.region.burn(self.grid, window) == 0] = IGNORE
        return codes


def layer_fields(path: str, layer: str | None) -> list[str]:
    from osgeo import ogr

    ds = ogr.Open(path)
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    defn = lyr.GetLayerDefn()
    return [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]


def hex_rgb(color: str) -> list[int]:
    """'#e8702a' (or '#rrggbbaa') → [232, 112, 42]."""
    h = color.lstrip("#")
    return [int(h[i:i + 2], 16) for i in (0, 2, 4)]


CLASS_TABLE_TAG = "LANDSLIDE_MAPPER_CLASSES"  # JSON [{value, name, color}] on class rasters this plugin writes


def raster_class_table(path: str) -> dict[int, tuple[str, str]]:
    """Names and colours a class raster declares: {value: (name, '#rrggbb')} from our class-table tag, else from
    GDAL category names and the colour table; {} when it declares none."""
    from osgeo import gdal

    with raster.open_raster(path) as src:
        tag = src.tags().get(CLASS_TABLE_TAG)
        try:
            colormap = src.colormap(1)
        except ValueError:
            colormap = {}
    if tag:
        try:
            return {int(c["value"]): (str(c["name"]), str(c.get("color", "#808080"))) for c in json.loads(tag)}
        except (ValueError, KeyError, TypeError):
            pass
    ds = gdal.Open(str(path))
    if ds is None:
        return {}
    ds.GetFileList()  # GDAL 3.6 reads a GeoTIFF's .aux.xml (category names) only after this
    names = ds.GetRasterBand(1).GetCategoryNames() or []
    ds = None
    return {v: (n, "#{:02x}{:02x}{:02x}".format(*colormap[v][:3]) if v in colormap else PALETTE[v % len(PALETTE)])
            for v, n in enumerate(names) if n}
