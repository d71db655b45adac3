"""Training chips: labels with a class table, sampling, spatially blocked splits, normalisation statistics.

Native chip folder layout:
    chips.json   manifest (layout, bands, tile size, sampling, CRS, pixel size, class table, counts per split)
    stats.json   per-band mean/std/min/max/p2/p98 over training chips, nodata excluded
    index.csv    one row per chip: id, split, pixel offsets, map bounds, valid and positive fractions
    images/<id>.tif   Float32 chips (NaN = nodata), band descriptions = stack band names
    labels/<id>.tif   UInt8 class values of the class table: 0 background, 1…254 classes, 255 = ignore
                      (nodata, or outside the labelled region)
    preview.png       a few chips with their labels drawn over them
The same export can be written as ArcGIS "Classified Tiles" instead (core/arcgis_tiles.py); `load_chips` reads
both, so training takes either folder.
"""
from __future__ import annotations

import csv
import json
import math
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio import features
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import raster
from .chip_tiles import TileWriter
from ..common.errors import InputError
from ..common.outputs import FolderKind, atomic_output, refuse_unsafe_target
from ..common.progress import Progress, SubProgress, check_canceled, or_null

IGNORE = 255
CLASSES = [
    {"value": 0, "name": "background", "color": "#00000000"},
    {"value": 1, "name": "landslide", "color": "#e8702a"},
]
CHIP_FORMAT = "landslide_mapper.chips"
SPLITS = ("train", "validation", "test")
SAMPLING_MODES = ("grid", "random", "positive")
LAYOUTS = ("native", "arcgis")
PALETTE = ["#e8702a", "#1f78b4", "#33a02c", "#e31a1c", "#6a3d9a", "#b15928", "#a6cee3", "#b2df8a", "#fb9a99",
           "#fdbf6f", "#cab2d6", "#ffff99"]
READ_BYTES = 16 << 20  # stack pixels held per read window in grid sampling
WRITERS = 2  # threads writing chip files: creating a file is slow kernel work that runs beside the cutting


# ---------------------------------------------------------------------------------------------- class table
@dataclass
class LabelClass:
    """One class of the label layer: the value burnt into label chips, its name and colour, landslide or not."""

    value: int
    name: str
    color: str
    landslide: bool = True


def _class_table(values: Sequence[int], names: dict | None = None) -> list[LabelClass]:
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


def _classes_from_manifest(entries: Sequence[dict]) -> list[LabelClass]:
    """Class table of a manifest; version-1 manifests list background 0 and landslide 1 without flags."""
    return [LabelClass(int(e["value"]), str(e.get("name", e["value"])), str(e.get("color", "#e8702a")),
                       bool(e.get("landslide", True))) for e in entries if 0 < int(e["value"]) < IGNORE]


# ---------------------------------------------------------------------------------------------- vectors
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


# ---------------------------------------------------------------------------------------------- labels
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
    classes = _class_table([v for _, v in shapes], names)
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
    hit = _hits(labels.bboxes, raster_window_bounds(transform, w, h))
    shapes = [(labels.shapes[i][0], 1) for i in hit]
    if not shapes:
        return np.zeros((h, w), dtype=np.uint8)
    return features.rasterize(shapes, out_shape=(h, w), transform=transform, fill=0, dtype="uint8")


def _hits(b: np.ndarray, bounds) -> np.ndarray:
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
            hit = _hits(self.labels.bboxes, raster_window_bounds(transform, w, h))
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


# ---------------------------------------------------------------------------------------------- statistics
class BandStatistics:
    """Per-band mean/std/min/max and 2/98 percentiles over many chips, nodata excluded.

    Each chip adds its own count, mean and sum of squared deviations (thread-safe, keyed by chip number); the
    result combines them exactly (Chan et al.) in key order, and the percentiles come from a bounded sample whose
    members are chosen by per-chip seeded keys, so the result does not depend on the order chips arrive in.
    """

    SAMPLE = 200_000

    def __init__(self, names: Sequence[str], seed: int = 0):
        self.names = list(names)
        self.seed = seed
        self.parts: dict[int, tuple] = {}
        self.sample_keys: list[np.ndarray] = []
        self.sample_values: list[np.ndarray] = []
        self.sampled = 0
        self.lock = threading.Lock()
        self._local = threading.local()
        self._next = 0

    def update(self, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add (bands, rows, cols) pixels; `valid` (rows, cols) excludes nodata (default: all bands finite)."""
        with self.lock:
            key, self._next = self._next, self._next + 1
        self.add(key, data, valid)

    def add(self, key: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        c = data.shape[0]
        flat = data.reshape(c, -1)
        ok = np.isfinite(flat).all(axis=0) if valid is None else valid.reshape(-1)
        n = int(np.count_nonzero(ok))
        if n == 0:
            return
        x = flat if n == flat.shape[1] else flat[:, ok]
        mean, m2, lo, hi = self._moments(x[None])
        self._record(key, x, (n, mean[0], m2[0], lo[0], hi[0]))

    def add_many(self, keys: Sequence[int], images: np.ndarray, valid: np.ndarray, which: Sequence[int]) -> None:
        """`add` for the chips images[which] (keys[i] for images[which[i]]); chips without nodata in one go.

        Each chip's part comes from the same reductions over the same contiguous pixels as in `add`, so results
        never depend on how chips were batched.
        """
        whole = [i for i in which if valid[i].all()]
        for key, i in zip(keys, which):
            if not valid[i].all():
                self.add(key, images[i], valid[i])
        if not whole:
            return
        b, c = len(whole), images.shape[1]
        x = images[:b] if whole == list(range(b)) else images[np.asarray(whole)]  # a view in the usual case
        x = x.reshape(b, c, -1)
        mean, m2, lo, hi = self._moments(x)
        key_of = dict(zip(which, keys))
        for j, i in enumerate(whole):
            self._record(key_of[i], x[j], (x.shape[2], mean[j], m2[j], lo[j], hi[j]))

    def _moments(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Mean, sum of squared deviations, min and max of (chips, bands, pixels) over the pixels.

        Centred on a float32 estimate of the mean, then corrected with the centred sum: float32 speed, a
        float64-grade mean, and no cancellation in the squares.
        """
        n = x.shape[2]
        guess = (x.sum(axis=2) / n).astype(x.dtype)
        centred = np.subtract(x, guess[:, :, None], out=self._scratch(x.shape, x.dtype))
        shift = centred.sum(axis=2, dtype=np.float64) / n
        m2 = np.square(centred, out=centred).sum(axis=2, dtype=np.float64) - n * shift**2
        return (guess.astype(np.float64) + shift, m2, x.min(axis=2).astype(np.float64),
                x.max(axis=2).astype(np.float64))

    def _record(self, key: int, x: np.ndarray, part: tuple) -> None:
        keys, values = self._sample(key, x, part[0])
        with self.lock:
            self.parts[key] = part
            self.sample_keys.append(keys)
            self.sample_values.append(values)
            self.sampled += len(keys)
            if self.sampled > 4 * self.SAMPLE:
                self._thin()

    @staticmethod
    def _sample(key: int, x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A few of the chip's (bands, n) valid pixels for the percentiles, at spacing `step` from a per-chip
        offset; their keys are a fixed hash of (chip, position), so which ones survive the bounded sample never
        depends on thread timing."""
        k = min(n, max(16, min(1024, n // 256)))
        step = n // k
        picks = (key * 7919) % step + step * np.arange(k)
        keys = ((picks.astype(np.uint64) + np.uint64(key) * np.uint64(2654435761)) * np.uint64(0x9E3779B97F4A7C15)
                >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        return keys, x[:, picks].astype(np.float32)

    def _scratch(self, shape, dtype) -> np.ndarray:
        """A per-thread work array, reused chip after chip (fresh memory costs page faults)."""
        size = int(np.prod(shape))
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._local.buf = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def _thin(self) -> None:
        """Keep the SAMPLE pixels with the smallest keys (independent of the order chips arrived in)."""
        keys, values = np.concatenate(self.sample_keys), np.concatenate(self.sample_values, axis=1)
        best = np.argsort(keys, kind="stable")[:self.SAMPLE]
        self.sample_keys, self.sample_values, self.sampled = [keys[best]], [values[:, best]], len(best)

    def result(self) -> list[dict]:
        nb = len(self.names)
        keys = sorted(self.parts)
        counts = np.array([self.parts[k][0] for k in keys], dtype=np.float64)
        if not len(keys):
            raise InputError(f"The training chips have no pixel with valid (non-nodata) values in every band "
                             f"({', '.join(self.names)}).")
        means = np.array([self.parts[k][1] for k in keys]).reshape(-1, nb)
        m2s = np.array([self.parts[k][2] for k in keys]).reshape(-1, nb)
        total = counts.sum()
        mean = (counts[:, None] * means).sum(axis=0) / total
        m2 = m2s.sum(axis=0) + (counts[:, None] * (means - mean) ** 2).sum(axis=0)
        lo = np.min([self.parts[k][3] for k in keys], axis=0)
        hi = np.max([self.parts[k][4] for k in keys], axis=0)
        self._thin()
        sample = self.sample_values[0]
        out = []
        for i, name in enumerate(self.names):
            p2, p98 = np.percentile(sample[i], [2, 98])
            out.append(dict(name=name, mean=float(mean[i]), std=float(math.sqrt(max(m2[i] / total, 0.0))) or 1.0,
                            min=float(lo[i]), max=float(hi[i]), p2=float(p2), p98=float(p98), count=int(total)))
        return out


# ---------------------------------------------------------------------------------------------- splits
def _assign_splits(unit_positives: dict, fractions: dict, seed: int) -> dict:
    """Split units (blocks/regions) → split name, stratified so held-out splits get landslide units too."""
    rng = np.random.default_rng(seed)
    held = [(s, f) for s, f in fractions.items() if s != "train" and f > 0]
    splits = {}
    for group in ([u for u, p in unit_positives.items() if p > 0], [u for u, p in unit_positives.items() if p == 0]):
        group = sorted(group)
        rng.shuffle(group)
        k = 0
        for split, fraction in held:
            n = int(round(len(group) * fraction))
            if n == 0 and len(group) > len(held):
                n = 1  # a small group still gives each held-out split one unit
            for u in group[k:k + n]:
                splits[u] = split
            k += n
        for u in group[k:]:
            splits[u] = "train"
    return splits


_SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "test": "test", "testing": "test"}


class SplitPlan:
    """Which split each chip belongs to: square blocks of the map, or polygons of regions, as split units.

    A chip is kept only when every pixel of it lies in units of one split, so no pixel is shared between splits.
    """

    def __init__(self, win: Window, block: tuple[int, int] | None = None, regions: PolygonSet | None = None,
                 grid=None):
        self.win, self.block, self.regions, self.grid = win, block, regions, grid
        self.unit_split: dict[int, str] = {}
        self.fixed = regions is not None and any(v is not None for v in regions.values)

    def units(self, window: Window) -> np.ndarray | None:
        """Region number (1-based; 0 = none) per pixel of an absolute window; None for blocks (arithmetic)."""
        if self.regions is None:
            return None
        ids = list(range(1, len(self.regions.shapes) + 1))
        return self.regions.burn(self.grid, window, values=ids, dtype="int32")

    def block_of(self, row: int, col: int) -> int:
        bh, bw = self.block
        return (row // bh) * (int(self.win.width) // bw + 1) + col // bw

    def chip_split(self, row: int, col: int, size: int, units: np.ndarray | None = None) -> str | None:
        """Split of the chip at window-relative (row, col); `units` = region numbers of the chip's pixels."""
        if self.regions is None:
            bh, bw = self.block
            names = {self.unit_split.get(self.block_of(r * bh, c * bw))
                     for r in range(row // bh, (row + size - 1) // bh + 1)
                     for c in range(col // bw, (col + size - 1) // bw + 1)}
        else:
            lo, hi = int(units.min()), int(units.max())
            if lo == 0:
                return None  # partly outside every region
            names = {self.unit_split.get(u) for u in ((lo,) if lo == hi else np.unique(units))}
        return names.pop() if len(names) == 1 else None

    def assign(self, unit_positives: dict, fractions: dict, seed: int) -> None:
        if self.fixed:
            for k, value in enumerate(self.regions.values, start=1):
                name = _SPLIT_NAMES.get(str(value).strip().lower()) if value is not None else None
                if name is None:
                    raise InputError(f"Split region {k} of '{self.regions.path}' has split '{value}'; use train, "
                                     f"validation or test.")
                self.unit_split[k] = name
        else:
            self.unit_split = _assign_splits(unit_positives, fractions, seed)


# ---------------------------------------------------------------------------------------------- export
@dataclass
class ChipExport:
    folder: Path
    bands: list[str]
    tile_size: int
    counts: dict = field(default_factory=dict)  # split -> {"chips", "pixels", "positive_pixels", ...}
    layout: str = "native"
    preview: Path | None = None
    classes: list = field(default_factory=list)


def _grid_positions(length: int, tile: int, stride: int) -> list[int]:
    if length < tile:
        return []
    pos = list(range(0, length - tile + 1, stride))
    if pos[-1] != length - tile:
        pos.append(length - tile)  # cover the far edge too
    return pos


# What a chip export writes: a folder holding only these may be replaced by a new export.
CHIP_FILES = ("chips.json", "stats.json", "index.csv", "preview.png", "images", "labels", "images/*.tif",
              "labels/*.tif", "images/*.tif.aux.xml", "labels/*.tif.aux.xml")
ARCGIS_FILES = ("map.txt", "stats.txt", "esri_model_definition.emd", "esri_accumulated_stats.json", "images/*.tfw",
                "labels/*.tfw")


def _layout_files(folder: Path) -> tuple[str, ...]:
    """The ArcGIS files, when the earlier export says it used that layout (read with a size cap)."""
    manifest = folder / "chips.json"
    try:
        if manifest.stat().st_size < 16 * 2**20 and json.loads(manifest.read_text()).get("layout") == "arcgis":
            return ARCGIS_FILES
    except (OSError, ValueError, AttributeError):
        pass
    return ()


CHIP_FOLDER = FolderKind("chip export", "chips.json", frozenset(CHIP_FILES), _layout_files)


def _prepare_output_folder(folder: Path) -> None:
    refuse_unsafe_target(folder.absolute(), is_dir=True, parameter="OUTPUT_FOLDER", kind=CHIP_FOLDER)


@dataclass
class _Survey:
    """What one pass over the labels tells: pixels per class per split unit, and a sample of landslide pixels."""

    hist: dict  # unit -> (256,) int64 pixel counts per class value
    positives: np.ndarray  # (n, 3) row, col, class value of a uniform sample of labelled non-background pixels


def _survey_labels(read_labels: LabelReader, plan: SplitPlan, win: Window, progress, seed: int,
                   keep: int = 200_000) -> _Survey:
    """Pass 1 over the labels only (no stack pixels): class histogram per split unit, and (keep > 0) a uniform
    sample of `keep` labelled non-background pixels for positive-biased sampling."""
    rng = np.random.default_rng(seed + 1)
    hist: dict = {}
    pos = np.zeros((0, 3), dtype=np.int64)
    keys = np.zeros(0)
    if plan.regions is None:
        bh, bw = plan.block
        # Windows aligned to the blocks: several small blocks per window, or a big block in several windows.
        step_h = bh * max(1, 1024 // bh) if bh <= 1024 else bh // math.ceil(bh / 1024)
        step_w = bw * max(1, 1024 // bw) if bw <= 1024 else bw // math.ceil(bw / 1024)
    else:
        step_h = step_w = raster.DEFAULT_BLOCK
    windows = [(r, c) for r in range(0, int(win.height), step_h) for c in range(0, int(win.width), step_w)]
    for k, (r, c) in enumerate(windows):
        check_canceled(progress)
        h, w = min(step_h, int(win.height) - r), min(step_w, int(win.width) - c)
        window = Window(win.col_off + c, win.row_off + r, w, h)
        codes = read_labels(window)
        if plan.regions is None:
            for br in range(0, h, bh):
                for bc in range(0, w, bw):
                    counts = _class_counts(codes[br:br + bh, bc:bc + bw])
                    unit = plan.block_of(r + br, c + bc)
                    hist[unit] = hist.get(unit, 0) + counts
        else:
            units = plan.units(window)
            combined = np.bincount((units.astype(np.int64) * 256 + codes).ravel())
            combined = np.pad(combined, (0, (-len(combined)) % 256)).reshape(-1, 256)
            for unit in np.flatnonzero(combined[1:].sum(axis=1)) + 1:
                hist[int(unit)] = hist.get(int(unit), 0) + combined[unit]
        rr, cc = np.nonzero((codes > 0) & (codes != IGNORE)) if keep else ((), ())
        if len(rr):
            new = np.stack([rr + r, cc + c, codes[rr, cc]], axis=1).astype(np.int64)
            pos, keys = np.concatenate([pos, new]), np.concatenate([keys, rng.random(len(rr))])
            if len(pos) > keep:  # uniform sample without replacement: keep the smallest random keys
                best = np.argpartition(keys, keep)[:keep]
                pos, keys = pos[best], keys[best]
        progress.set_progress(100.0 * (k + 1) / len(windows))
    return _Survey(hist, pos)


def _class_counts(codes: np.ndarray) -> np.ndarray:
    """Pixels per value 0…255 of a uint8 array. Background (0) is most of a scene: counting the rest only is
    several times faster than np.bincount, which first widens every pixel to 64 bits."""
    other = codes[codes != 0]
    counts = np.bincount(other, minlength=256)
    counts[0] = codes.size - other.size
    return counts


def export_chips(
    stack_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    out_folder: str | os.PathLike,
    *,
    class_field: str = "class",
    label_layer: str | None = None,
    landslide_classes=None,
    region_path: str | os.PathLike | None = None,
    region_layer: str | None = None,
    tile_size: int = 128,
    stride: int = 64,
    sampling: str = "grid",
    n_chips: int = 1000,
    positive_fraction: float = 0.5,
    min_positive_pixels: int = 1,
    extent: Sequence[float] | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.0,
    split_block: int | None = None,
    split_block_size: float | None = None,
    split_regions_path: str | os.PathLike | None = None,
    split_regions_layer: str | None = None,
    split_field: str | None = "split",
    min_valid_fraction: float = 0.5,
    layout: str = "native",
    preview: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> ChipExport:
    """Cut a stack and its labels into chips, split into train/validation/test by spatial units.

    labels: polygons in any CRS (reprojected to the stack grid) with `class_field` (numeric or text → class
    table), or a label raster of class values. `landslide_classes` (values or names; None = every class) says
    which classes are landslides. `region_path`: polygons of the digitised area; unlabelled ground outside it is
    'unknown' (255), never background.
    sampling: "grid" (every `stride` px), "random" (`n_chips` uniform positions) or "positive" (`n_chips`, of
    which `positive_fraction` hold ≥ `min_positive_pixels` landslide pixels). Rotations and flips are training
    augmentations, never exported copies.
    splits: blocks of `split_block` px or `split_block_size` map units, or polygons of `split_regions_path`
    (a `split_field` of train/validation/test fixes each region's split; else regions are drawn at random). Chips
    that would straddle two splits are not cut, so no pixel is in two splits.
    layout: "native" or "arcgis" (ArcGIS Pro "Classified Tiles", see core/arcgis_tiles.py).
    """
    progress = or_null(progress)
    if tile_size < 16 or stride < 1:
        raise InputError(f"Tile size must be ≥ 16 px and stride ≥ 1 px (got {tile_size} and {stride}).")
    if sampling not in SAMPLING_MODES:
        raise InputError(f"Sampling must be one of {', '.join(SAMPLING_MODES)} (got '{sampling}').")
    if layout not in LAYOUTS:
        raise InputError(f"Chip layout must be one of {', '.join(LAYOUTS)} (got '{layout}').")
    if not (0.0 <= validation_fraction < 1.0 and 0.0 <= test_fraction < 1.0
            and validation_fraction + test_fraction < 1.0):
        raise InputError(f"Validation and test fractions must be ≥ 0 and leave room for training (got "
                         f"{validation_fraction} and {test_fraction}).")
    if sampling != "grid" and n_chips < 1:
        raise InputError(f"The number of chips to sample must be ≥ 1 (got {n_chips}).")
    if not 0.0 <= positive_fraction <= 1.0 or min_positive_pixels < 1:
        raise InputError(f"Positive fraction must be in [0, 1] and the minimum landslide pixels ≥ 1 (got "
                         f"{positive_fraction} and {min_positive_pixels}).")
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise InputError(f"Minimum valid fraction must be in [0, 1] (got {min_valid_fraction}).")
    out_folder = Path(out_folder).resolve()
    _prepare_output_folder(out_folder)
    fractions = {"train": 1.0 - validation_fraction - test_fraction, "validation": validation_fraction,
                 "test": test_fraction}
    with _open_stack(stack_path) as src:
        names = raster.band_names(src)
        win = raster.window_from_extent(src, extent)
        if win.width < tile_size or win.height < tile_size:
            raise InputError(
                f"Tile size {tile_size} px is larger than the area to cut from '{stack_path}' "
                f"({int(win.width)}×{int(win.height)} px)."
            )
        if abs(src.transform.b) > 0 or abs(src.transform.d) > 0:
            raise InputError(f"Stack '{stack_path}' is on a rotated grid; warp it to a north-up grid first.")
        area = src.window_bounds(win)
        labels = open_labels(str(labels_path), src, class_field, label_layer, what="Label layer (LABELS)")
        if labels.shapes is not None and not labels.shapes:
            raise InputError(f"Label layer '{labels_path}' has no feature with a class above 0 in field "
                             f"'{class_field}': nothing to learn landslides from.")
        if labels.bboxes is not None and not len(_hits(labels.bboxes, area)):
            raise InputError(
                f"None of the {len(labels.bboxes)} landslide polygons in '{labels_path}' falls inside the raster "
                f"area being cut; check the label layer (its CRS) and the extent."
            )
        region = None
        if region_path:
            region = read_polygons(str(region_path), src.crs, layer=region_layer, what="Labelled-region layer (REGION)")
            if not len(region.select(area)):
                raise InputError(f"Labelled-region layer '{region_path}' does not overlap the raster area being "
                                 f"cut.")
        plan = _split_plan(src, win, tile_size, split_block, split_block_size, split_regions_path,
                           split_regions_layer, split_field)
        read_labels = LabelReader(labels, src, region)
        try:
            survey = _survey_labels(read_labels, plan, win, SubProgress(progress, 0, 15), seed,
                                    keep=200_000 if sampling == "positive" else 0)
            if labels.raster_path is not None:
                total = sum(survey.hist.values()) if survey.hist else np.zeros(256)
                labels.classes = _class_table(np.flatnonzero(total[1:IGNORE]) + 1)
                if not labels.classes:
                    raise InputError(f"Label raster '{labels_path}' has no pixel above 0 in the area being cut: "
                                     f"nothing to learn landslides from.")
            labels.classes = mark_landslide_classes(labels.classes, landslide_classes, f"Label layer '{labels_path}'")
            lut = landslide_lut(labels.classes)
            is_landslide = lut == 1
            unit_positives = {u: int(h[is_landslide].sum()) for u, h in survey.hist.items()}
            plan.assign(unit_positives, fractions, seed)
            from .arcgis_tiles import ArcGISLayout  # noqa: PLC0415 - the ArcGIS writer imports this module

            with atomic_output(out_folder, is_dir=True, kind=CHIP_FOLDER) as tmp:
                writer_cls = ArcGISLayout if layout == "arcgis" else NativeLayout
                out = writer_cls(tmp, src, win, names, tile_size, labels.classes)
                cutter = _Cutter(out, plan, lut, names, tile_size, min_valid_fraction, min_positive_pixels, seed)
                try:
                    cut_progress = SubProgress(progress, 15, 95)
                    if sampling == "grid":
                        _cut_grid(src, win, read_labels, cutter, stride, cut_progress)
                    else:
                        n_pos = int(round(n_chips * positive_fraction)) if sampling == "positive" else 0
                        _cut_random(src, win, read_labels, cutter, n_chips, n_pos, survey.positives, lut,
                                    seed, cut_progress)
                    cutter.flush()
                finally:
                    cutter.close()
                cutter.check(stack_path)
                band_stats = cutter.stats.result()
                (tmp / "stats.json").write_text(json.dumps({"computed_on": "train", "nodata": "excluded",
                                                            "bands": band_stats}, indent=2))
                _write_index(tmp / "index.csv", cutter.index_rows)
                manifest = _manifest(src, layout, names, tile_size, stride, sampling, n_chips, positive_fraction,
                                     min_positive_pixels, min_valid_fraction, labels.classes, plan, fractions, seed,
                                     cutter.counts, dict(stack=str(stack_path), labels=str(labels_path),
                                                         class_field=class_field,
                                                         region=str(region_path) if region_path else None,
                                                         split_regions=str(split_regions_path)
                                                         if split_regions_path else None))
                (tmp / "chips.json").write_text(json.dumps(manifest, indent=2))
                out.finish(manifest, band_stats, cutter)
                preview_path = None
                if preview and cutter.preview:
                    preview_path = write_preview(tmp / "preview.png", cutter.preview, band_stats, lut,
                                                 labels.classes)
        finally:
            read_labels.close()
    for split, c in cutter.counts.items():
        if c["chips"]:
            progress.log(f"{split}: {c['chips']} chips ({c['positive_chips']} with ≥ {min_positive_pixels} landslide "
                         f"px), {c['pixels']} labelled px, {c['positive_pixels']} landslide px")
    return ChipExport(folder=out_folder, bands=names, tile_size=tile_size, counts=cutter.counts, layout=layout,
                      preview=out_folder / "preview.png" if preview_path else None, classes=labels.classes)


def _open_stack(path):
    """The stack opened for cutting. Each of its pixels is read once, so GDAL's block cache would only cost fresh
    memory (a page fault per 4 KiB): uncompressed GeoTIFFs are read past it (GTIFF_DIRECT_IO, which GDAL takes
    at open time; same pixels, about half the read time)."""
    with rasterio.Env(GTIFF_DIRECT_IO="YES"):
        return raster.open_raster(path)


def _manifest(src, layout, names, tile_size, stride, sampling, n_chips, positive_fraction, min_positive_pixels,
              min_valid_fraction, classes, plan: SplitPlan, fractions, seed, counts, source) -> dict:
    """chips.json: everything about how the chips were made (what training and a later reader need)."""
    px, py = raster.pixel_size(src)
    return dict(
        format=CHIP_FORMAT, version=2, layout=layout, bands=names, tile_size=tile_size,
        stride=stride if sampling == "grid" else None, crs=src.crs.to_wkt(), pixel_size=[px, py],
        classes=[asdict(c) for c in classes], ignore_value=IGNORE,
        sampling=dict(mode=sampling, n_chips=n_chips if sampling != "grid" else None,
                      positive_fraction=positive_fraction if sampling == "positive" else None,
                      min_positive_pixels=min_positive_pixels, min_valid_fraction=min_valid_fraction),
        split=dict(method="regions" if plan.regions is not None else "blocks",
                   block_px=list(plan.block) if plan.block else None,
                   block_size=[plan.block[0] * py, plan.block[1] * px] if plan.block else None,
                   fractions=fractions, seed=seed),
        counts=counts, source=source)


def _split_plan(src, win, tile_size, split_block, split_block_size, regions_path, regions_layer,
                split_field) -> SplitPlan:
    if regions_path:
        polys = read_polygons(str(regions_path), src.crs, layer=regions_layer,
                              what="Split-region layer (SPLIT_REGIONS)")
        fields = _layer_fields(str(regions_path), regions_layer)
        if split_field and split_field in fields:
            polys = read_polygons(str(regions_path), src.crs, layer=regions_layer, field=split_field,
                                  what="Split-region layer (SPLIT_REGIONS)")
        if not len(polys.select(src.window_bounds(win))):
            raise InputError(f"Split-region layer '{regions_path}' does not overlap the raster area being cut.")
        return SplitPlan(win, regions=polys, grid=src)
    if split_block and split_block_size:
        raise InputError("Give the split block size in pixels or in map units, not both.")
    if split_block_size:
        px, py = raster.pixel_size(src)
        block = (max(1, int(round(split_block_size / py))), max(1, int(round(split_block_size / px))))
    else:
        block = (int(split_block or tile_size * 4),) * 2
    if min(block) < 1:
        raise InputError(f"Split blocks must be at least one pixel (got {block}).")
    return SplitPlan(win, block=block, grid=src)


def _layer_fields(path: str, layer: str | None) -> list[str]:
    from osgeo import ogr

    ds = ogr.Open(path)
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    defn = lyr.GetLayerDefn()
    return [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]


# ---------------------------------------------------------------------------------------------- cutting
class _ChipBatch:
    """Chips queued together for one writer task, their pixels side by side: a writer thread is woken once per
    batch rather than per chip, and the training statistics take many chips per numpy call (each hand-over
    between threads costs more than a small chip's arithmetic)."""

    def __init__(self, size: int, bands: int, tile: int):
        self.images = np.empty((size, bands, tile, tile), np.float32)
        self.codes = np.empty((size, tile, tile), np.uint8)
        self.valid = np.empty((size, tile, tile), bool)
        self.keys: list[int] = []
        self.origins: list[tuple] = []
        self.train: list[int] = []  # positions in the batch of training chips

    @property
    def full(self) -> bool:
        return len(self.keys) == len(self.images)

    def add(self, key: int, image, codes, valid, origin, train: bool) -> None:
        i = len(self.keys)
        np.copyto(self.images[i], image)  # views into a read window that gets reused: copy the chip out
        np.copyto(self.codes[i], codes)
        np.copyto(self.valid[i], valid)
        self.keys.append(key)
        self.origins.append(origin)
        if train:
            self.train.append(i)

    def clear(self) -> None:
        self.keys, self.origins, self.train = [], [], []


class _Cutter:
    """Decides for each candidate chip (split, validity, positives), queues its writing, keeps the bookkeeping.

    Writing (files and training statistics) runs in a few threads: creating a file costs more than its pixels.
    """

    PREVIEW = 4  # chips of each kind (with / without landslides) kept for the preview
    BATCH_BYTES = 16 << 20  # pixels of the chips handed to a writer at once

    def __init__(self, out, plan: SplitPlan, lut, names, tile, min_valid, min_positive, seed):
        self.out, self.plan, self.lut, self.tile = out, plan, lut, tile
        self.min_valid, self.min_positive = min_valid, min_positive
        self.stats = BandStatistics(names, seed)
        self.counts = {s: {"chips": 0, "pixels": 0, "positive_pixels": 0, "positive_chips": 0} for s in SPLITS}
        self.rejected = {"straddle": 0, "nodata": 0, "unlabelled": 0}
        self.index_rows: list[dict] = []
        self._picks: dict[int, list] = {0: [], 1: []}
        self._seen = [0, 0]
        self.rng = np.random.default_rng(seed + 2)
        self.pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="chip-writer")
        self.pending: list = []
        # Batches go round between cutting and writing (bounded memory; fresh memory would cost a page fault per
        # 4 KiB): one being filled, one per writer, one spare.
        chip_bytes = (len(names) * 4 + 2) * tile * tile
        size = max(1, min(64, self.BATCH_BYTES // chip_bytes))
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(WRITERS + 1):
            self.free.put(_ChipBatch(size, len(names), tile))
        self.batch = _ChipBatch(size, len(names), tile)

    def consider(self, row: int, col: int, image: np.ndarray, codes: np.ndarray, valid: np.ndarray,
                 n_valid: int, n_known: int, positives: int, units: np.ndarray | None = None,
                 need_positive: bool = False) -> tuple[str | None, bool]:
        """Cut the chip at window-relative (row, col) if it qualifies: (split or None, written).

        `image`, `codes`, `valid` are the chip's pixels (views into a window: copied here if the chip is cut);
        n_valid / n_known / positives count its valid, labelled and landslide pixels.
        """
        t = self.tile
        split = self.plan.chip_split(row, col, t, units)
        if split is None:
            self.rejected["straddle"] += 1
            return None, False
        need = max(1.0, self.min_valid * t * t)
        if n_known < need:
            self.rejected["nodata" if n_valid < need else "unlabelled"] += 1
            return split, False
        if not self.out.accepts(n_valid, n_known):
            self.rejected["unlabelled"] += 1
            return split, False
        if need_positive and positives < self.min_positive:
            return split, False
        k = len(self.index_rows)
        self.batch.add(k, image, codes, valid, self.out.origin(row, col), split == "train")
        if self.batch.full:
            self._submit()
        c = self.counts[split]
        c["chips"] += 1
        c["pixels"] += n_known
        c["positive_pixels"] += positives
        c["positive_chips"] += positives >= self.min_positive
        bounds = self.out.bounds(row, col)
        self.index_rows.append(dict(id=self.out.chip_id(k), split=split, row=int(self.out.win.row_off + row),
                                    col=int(self.out.win.col_off + col), xmin=bounds[0], ymin=bounds[1],
                                    xmax=bounds[2], ymax=bounds[3], valid_fraction=round(n_known / (t * t), 4),
                                    positive_fraction=round(positives / max(n_known, 1), 6)))
        self._keep_for_preview(image, codes, split, positives)
        return split, True

    def _submit(self) -> None:
        """Hand the filled batch to a writer and take a free one (waiting while every batch is queued)."""
        self.pending.append(self.pool.submit(self._write, self.batch))
        self.batch = self.free.get()
        finished = [f for f in self.pending if f.done()]
        for f in finished:
            f.result()  # re-raises a failed write here, in the cutting thread
        self.pending = [f for f in self.pending if not f.done()]

    def _write(self, batch: _ChipBatch) -> None:
        try:
            for i, (k, origin) in enumerate(zip(batch.keys, batch.origins)):
                self.out.write_chip(k, batch.images[i], batch.codes[i], batch.valid[i], origin)
            if batch.train:
                self.stats.add_many([batch.keys[i] for i in batch.train], batch.images, batch.valid, batch.train)
        finally:
            batch.clear()
            self.free.put(batch)

    def _keep_for_preview(self, image, codes, split, positives) -> None:
        kind = int(positives > 0)
        self._seen[kind] += 1
        mine = self._picks[kind]
        if len(mine) < self.PREVIEW:
            mine.append((np.array(image), np.array(codes), split, kind))
        else:  # reservoir sampling: every chip of a kind equally likely to be shown
            j = int(self.rng.integers(0, self._seen[kind]))
            if j < self.PREVIEW:
                mine[j] = (np.array(image), np.array(codes), split, kind)

    @property
    def preview(self) -> list[tuple]:
        return self._picks[1] + self._picks[0]

    def flush(self) -> None:
        if self.batch.keys:
            self._submit()
        for f in self.pending:
            f.result()
        self.pending = []

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def check(self, stack_path) -> None:
        if self.counts["train"]["chips"] > 0:
            return
        r = self.rejected
        if r["nodata"] and not r["unlabelled"] and not any(c["chips"] for c in self.counts.values()):
            raise InputError(f"No chip could be cut from '{stack_path}': every candidate tile had less than "
                             f"{self.min_valid:.0%} valid (non-nodata) pixels; the area is (nearly) all nodata.")
        raise InputError(
            f"No training chip could be cut from '{stack_path}': of the candidate tiles {r['straddle']} straddled "
            f"a split boundary, {r['nodata']} had less than {self.min_valid:.0%} valid (non-nodata) pixels and "
            f"{r['unlabelled']} lay (partly) outside the labelled region. Use larger split blocks, a lower minimum "
            f"valid fraction, or check the labelled-region layer.")


def _grid_windows(rows: list[int], tile: int, max_rows: int) -> list[tuple[int, int, int]]:
    """Read windows of whole chip rows: (first chip-row index, last index, top row of the window)."""
    out, i = [], 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] + tile - rows[i] <= max_rows:
            j += 1
        out.append((i, j, rows[i]))
        i = j + 1
    return out


def _column_counts(mask: np.ndarray, top: int, tile: int, cols: Sequence[int]) -> np.ndarray:
    """Pixels set in mask[top:top+tile, c:c+tile] for every c in cols, from one column sum of the band."""
    band = np.count_nonzero(mask[top:top + tile], axis=0)
    cum = np.concatenate([[0], np.cumsum(band)])
    c = np.asarray(cols)
    return cum[c + tile] - cum[c]


def _is_landslide(codes: np.ndarray, lut: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """lut[codes] == 1 by comparisons, one per landslide class (cheaper than a table look-up per pixel)."""
    out[...] = False
    for value in np.flatnonzero(lut == 1):
        out |= np.equal(codes, value, out=scratch)
    return out


def _cut_grid(src, win, read_labels, cutter: _Cutter, stride: int, progress) -> None:
    """Grid sampling: read the stack in windows of whole chip rows (the next one read ahead into a second set of
    buffers), cut every tile. Buffers are reused window after window: fresh memory costs a page fault per page."""
    t = cutter.tile
    rows = _grid_positions(int(win.height), t, stride)
    cols = _grid_positions(int(win.width), t, stride)
    bands = list(range(1, src.count + 1))
    max_rows = max(t, READ_BYTES // max(1, int(win.width) * src.count * 4))
    windows = _grid_windows(rows, t, max_rows)
    buffers: dict = {}

    def buffer(slot: int, name: str, shape: tuple, dtype) -> np.ndarray:
        key = (slot, name, shape)
        if key not in buffers:
            buffers[key] = np.empty(shape, dtype=dtype)
        return buffers[key]

    def load(w: int):
        i, j, top = windows[w]
        window = Window(win.col_off, win.row_off + top, win.width, rows[j] + t - top)
        shape = (int(window.height), int(window.width))
        data = raster.read_float(src, bands, window, out=buffer(w % 2, "data", (len(bands),) + shape, np.float32))
        valid = np.isfinite(data[0], out=buffer(w % 2, "valid", shape, bool))
        scratch = buffer(w % 2, "scratch", shape, bool)
        for b in range(1, len(data)):
            valid &= np.isfinite(data[b], out=scratch)
        codes = read_labels(window)
        codes[~valid] = IGNORE  # nodata is unknown ground, never background
        return data, valid, codes, cutter.plan.units(window)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chip-reader") as reader:
        ahead = reader.submit(load, 0)
        for w, (i, j, top) in enumerate(windows):
            check_canceled(progress)
            data, valid, codes, units = ahead.result()
            if w + 1 < len(windows):
                ahead = reader.submit(load, w + 1)  # into the other buffers: this window's stay untouched
            known = np.not_equal(codes, IGNORE, out=buffer(0, "known", codes.shape, bool))
            landslide = _is_landslide(codes, cutter.lut, buffer(0, "landslide", codes.shape, bool),
                                      buffer(0, "compare", codes.shape, bool))
            for r in rows[i:j + 1]:
                check_canceled(progress)
                rr = r - top
                n_valid = _column_counts(valid, rr, t, cols)
                n_known = _column_counts(known, rr, t, cols)
                n_pos = _column_counts(landslide, rr, t, cols)
                for k, c in enumerate(cols):
                    chip_units = units[rr:rr + t, c:c + t] if units is not None else None
                    cutter.consider(r, c, data[:, rr:rr + t, c:c + t], codes[rr:rr + t, c:c + t],
                                    valid[rr:rr + t, c:c + t], int(n_valid[k]), int(n_known[k]), int(n_pos[k]),
                                    chip_units)
            progress.set_progress(100.0 * (j + 1) / len(rows))


def _cut_random(src, win, read_labels, cutter: _Cutter, n_chips: int, n_positive: int, positives: np.ndarray,
                lut: np.ndarray, seed: int, progress) -> None:
    """Random sampling: `n_chips` positions, of which `n_positive` are drawn around sampled landslide pixels."""
    t = cutter.tile
    h, w = int(win.height), int(win.width)
    rng = np.random.default_rng(seed + 3)
    bands = list(range(1, src.count + 1))
    landslide_px = positives[lut[positives[:, 2].astype(np.uint8)] == 1] if len(positives) else positives
    if n_positive and not len(landslide_px):
        raise InputError("Positive-biased sampling needs landslide pixels, but the labels hold none inside the "
                         "area being cut.")
    taken: set = set()
    need = {"positive": n_positive, "any": n_chips - n_positive}
    attempts, max_attempts = 0, 30 * n_chips + 100
    while (need["positive"] > 0 or need["any"] > 0) and attempts < max_attempts:
        batch = []
        for kind in ("positive", "any"):
            for _ in range(min(need[kind] * 2, 512)):
                if kind == "positive":
                    pr, pc, _ = landslide_px[rng.integers(0, len(landslide_px))]
                    r = int(rng.integers(max(0, pr - t + 1), min(pr, h - t) + 1))
                    c = int(rng.integers(max(0, pc - t + 1), min(pc, w - t) + 1))
                else:
                    r, c = int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1))
                batch.append((r, c, kind))
        batch.sort()  # row order: neighbouring reads share the stack's blocks
        for r, c, kind in batch:
            attempts += 1  # duplicates count too: a small area runs out of new positions
            if need[kind] <= 0 or (r, c) in taken:
                continue
            check_canceled(progress)
            window = Window(win.col_off + c, win.row_off + r, t, t)
            data = raster.read_float(src, bands, window)
            valid = np.isfinite(data).all(axis=0)
            codes = read_labels(window)
            codes[~valid] = IGNORE
            _, written = cutter.consider(r, c, data, codes, valid, int(np.count_nonzero(valid)),
                                         int(np.count_nonzero(codes != IGNORE)),
                                         int(np.count_nonzero(lut[codes] == 1)), cutter.plan.units(window),
                                         need_positive=kind == "positive")
            if written:
                taken.add((r, c))
                need[kind] -= 1
        progress.set_progress(100.0 * (n_chips - need["positive"] - need["any"]) / n_chips)
    short = need["positive"] + need["any"]
    if short:
        progress.log(f"Only {n_chips - short} of {n_chips} chips could be sampled ({need['positive']} positive chips "
                     f"short): the area has too few valid, labelled positions.")


# ---------------------------------------------------------------------------------------------- native layout
class NativeLayout:
    """Writes chips as images/<id>.tif (Float32, NaN nodata) and labels/<id>.tif (UInt8 class values)."""

    def __init__(self, folder: Path, src, win: Window, names, tile: int, classes):
        self.folder, self.src, self.win, self.tile = folder, src, win, tile
        self.transform = src.transform
        (folder / "images").mkdir()
        (folder / "labels").mkdir()
        px = raster.pixel_size(src)
        self.images = TileWriter(width=tile, height=tile, count=len(names), dtype="float32", crs=src.crs,
                                 pixel_size=px, descriptions=names, nodata=float("nan"))
        self.labels = TileWriter(width=tile, height=tile, count=1, dtype="uint8", crs=src.crs, pixel_size=px,
                                 descriptions=["label"], nodata=IGNORE)

    def chip_id(self, k: int) -> str:
        return f"{k:06d}"

    def origin(self, row: int, col: int) -> tuple[float, float]:
        return self.transform * (self.win.col_off + col, self.win.row_off + row)

    def bounds(self, row: int, col: int) -> tuple[float, float, float, float]:
        t = self.transform * Affine.translation(self.win.col_off + col, self.win.row_off + row)
        return raster_window_bounds(t, self.tile, self.tile)

    def accepts(self, n_valid: int, n_known: int) -> bool:
        return True

    def write_chip(self, k: int, image: np.ndarray, codes: np.ndarray, valid: np.ndarray, origin) -> None:
        cid = self.chip_id(k)
        self.images.write(self.folder / "images" / f"{cid}.tif", image, origin)
        self.labels.write(self.folder / "labels" / f"{cid}.tif", codes[None], origin)

    def finish(self, manifest: dict, band_stats: list[dict], cutter) -> None:
        pass


def _write_index(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------- preview
def _preview_bands(names: Sequence[str]) -> list[int]:
    """Red, green, blue band indexes: Sentinel-2 true colour when the stack has it, else the first three bands."""
    for wanted in (("B04", "B03", "B02"), ("post_B04", "post_B03", "post_B02")):
        if all(w in names for w in wanted):
            return [names.index(w) for w in wanted]
    return [0, 1, 2] if len(names) >= 3 else [0] * 3


def write_preview(path: Path, chips: Sequence[tuple], band_stats: Sequence[dict], lut: np.ndarray,
                  classes: Sequence[LabelClass], cell: int = 160) -> Path:
    """PNG mosaic of a few chips (first three bands stretched 2–98 %) with their labels drawn over them.

    Landslide classes are filled in their colour and outlined, other classes tinted, unknown/nodata grey. Drawn
    with Pillow: importing matplotlib would take longer than cutting thousands of chips.
    """
    from PIL import Image, ImageDraw

    chips = sorted(chips, key=lambda p: -p[3])
    cols = min(4, len(chips))
    rows_n = math.ceil(len(chips) / cols)
    gap, title = 6, 22
    mosaic = np.ones((title + rows_n * (cell + gap), cols * (cell + gap), 3), dtype=np.float32)
    colours = {c.value: np.array(hex_rgb(c.color), dtype=np.float32) / 255 for c in classes}
    bands = _preview_bands([s["name"] for s in band_stats])
    for k, (image, codes, split, _) in enumerate(chips):
        t = codes.shape[0]
        pick = np.arange(cell) * t // cell  # nearest-neighbour zoom to the cell size
        rgb = np.empty((t, t, 3), dtype=np.float32)
        for j, b in enumerate(bands):
            lo, hi = band_stats[b]["p2"], band_stats[b]["p98"]
            rgb[..., j] = np.clip((image[b] - lo) / ((hi - lo) or 1.0), 0, 1)
        rgb[~np.isfinite(rgb)] = 0
        for value, colour in colours.items():
            mask = codes == value
            alpha = 0.55 if lut[value] == 1 else 0.3
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
        rgb[codes == IGNORE] = 0.5 * rgb[codes == IGNORE] + 0.25
        landslide = lut[codes] == 1
        edge = landslide & ~(np.roll(landslide, 1, 0) & np.roll(landslide, -1, 0) & np.roll(landslide, 1, 1)
                             & np.roll(landslide, -1, 1))
        rgb[edge] = (1.0, 1.0, 0.2)
        r, c = divmod(k, cols)
        top = title + r * (cell + gap)
        mosaic[top:top + cell, c * (cell + gap):c * (cell + gap) + cell] = rgb[pick][:, pick]
    picture = Image.fromarray((mosaic * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    font = _preview_font()
    draw.text((4, 5), "Chips and labels: landslide classes coloured, yellow outline; other classes tinted; "
                      "grey = unknown / nodata", fill=(0, 0, 0), font=font)
    for k, (_, codes, split, _) in enumerate(chips):
        r, c = divmod(k, cols)
        x, y = c * (cell + gap) + 3, title + r * (cell + gap) + 3
        text = f"{split}  {float((lut[codes] == 1).mean()):.1%}"
        box = draw.textbbox((x, y), text, font=font)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
    picture.save(path, format="PNG", compress_level=1)  # zlib's default level costs more than the drawing
    return path


def hex_rgb(color: str) -> list[int]:
    """'#e8702a' (or '#rrggbbaa') → [232, 112, 42]."""
    h = color.lstrip("#")
    return [int(h[i:i + 2], 16) for i in (0, 2, 4)]


def _preview_font():
    """A small sans-serif TrueType font where the system has one, else Pillow's built-in bitmap font."""
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "arial.ttf",
                 "Helvetica.ttc"):
        try:
            return ImageFont.truetype(name, 11)
        except OSError:
            continue
    return ImageFont.load_default()


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class ChipSet:
    """Chips of one folder held in memory: images (N, C, H, W) float32 with NaN, labels (N, H, W) uint8 0/1/255."""

    folder: Path
    manifest: dict
    stats: list[dict]
    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray

    @property
    def bands(self) -> list[str]:
        return list(self.manifest["bands"])

    def subset(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        keep = self.splits == split
        return self.images[keep], self.labels[keep]


def is_classified_tiles(folder: Path) -> bool:
    """True for an ArcGIS 'Classified Tiles' export (ours or ArcGIS Pro's)."""
    manifest = folder / "chips.json"
    if manifest.exists():
        try:
            return json.loads(manifest.read_text()).get("layout") == "arcgis"
        except (OSError, ValueError):
            return False
    return (folder / "esri_model_definition.emd").exists() or (folder / "map.txt").exists()


def load_chips(folder: str | os.PathLike, landslide_classes=None, max_bytes: int = 4 << 30,
               validation_fraction: float = 0.2, seed: int = 0) -> ChipSet:
    """Load a native chip folder or an ArcGIS 'Classified Tiles' folder; labels become 0/1/255.

    `landslide_classes` (values or names, e.g. "2") picks the classes that are landslides, all other classes being
    background; None keeps the export's choice (native) or needs a class named 'landslide' or a single class
    (ArcGIS). Folders without our split get a spatially blocked one (`validation_fraction`, `seed`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"Chip folder '{folder}' does not exist.")
    if is_classified_tiles(folder):
        from .arcgis_tiles import read_classified_tiles

        return read_classified_tiles(folder, landslide_classes, max_bytes=max_bytes,
                                     validation_fraction=validation_fraction, seed=seed)
    return _load_native(folder, landslide_classes, max_bytes)


def binary_manifest(manifest: dict, classes: Sequence[LabelClass]) -> dict:
    """The manifest a ChipSet carries: the binary classes training predicts, the source class table beside."""
    chosen = [c.name for c in classes if c.landslide]
    landslide = dict(CLASSES[1], source_classes=chosen) if chosen else dict(CLASSES[1])
    return {**manifest, "classes": [CLASSES[0], landslide], "label_classes": [asdict(c) for c in classes]}


def _load_native(folder: Path, landslide_classes, max_bytes: int) -> ChipSet:
    manifest_path = folder / "chips.json"
    if not manifest_path.exists():
        raise InputError(f"'{folder}' is not a chip folder: chips.json (or an ArcGIS esri_model_definition.emd) "
                         f"is missing; export chips first.")
    try:
        manifest = json.loads(manifest_path.read_text())
        stats = json.loads((folder / "stats.json").read_text())["bands"]
        with open(folder / "index.csv", newline="") as f:
            index = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"Chip folder '{folder}' is incomplete or damaged: {exc}") from None
    if manifest.get("format") != CHIP_FORMAT:
        raise InputError(f"'{manifest_path}' is not a Landslide Mapper chip manifest.")
    classes = mark_landslide_classes(_classes_from_manifest(manifest.get("classes", CLASSES)), landslide_classes,
                                     f"Chip folder '{folder}'") if landslide_classes is not None else \
        _classes_from_manifest(manifest.get("classes", CLASSES))
    lut = landslide_lut(classes)
    n, c, t = len(index), len(manifest["bands"]), int(manifest["tile_size"])
    if n == 0:
        raise InputError(f"Chip folder '{folder}' lists no chips.")
    if n * c * t * t * 4 > max_bytes:
        raise InputError(f"Chip folder '{folder}' holds {n} chips, more than fit in memory for training here.")
    images = np.empty((n, c, t, t), dtype=np.float32)
    labels = np.empty((n, t, t), dtype=np.uint8)
    for i, row in enumerate(index):
        for kind, arr in (("images", images), ("labels", labels)):
            p = folder / kind / f"{row['id']}.tif"
            if not p.exists():
                raise InputError(f"Chip folder '{folder}' lists chip {row['id']} but '{p}' is missing.")
            with raster.reading(p), rasterio.open(p) as src:
                if (src.height, src.width) != (t, t) or (kind == "images" and src.count != c):
                    raise InputError(f"Chip '{p}' is {src.count}×{src.height}×{src.width}, expected "
                                     f"{c if kind == 'images' else 1}×{t}×{t}.")
                if kind == "images":
                    arr[i] = raster.read_float(src, list(range(1, c + 1)))
                else:
                    arr[i] = lut[src.read(1)]
    return ChipSet(folder, binary_manifest(manifest, classes), stats, images, labels,
                   np.array([r["split"] for r in index]))
