"""Training chips: label rasterising, grid sampling, spatially blocked splits, normalisation statistics.

Native chip folder layout:
    chips.json   manifest (bands, tile size, CRS, pixel size, classes, counts per split)
    stats.json   per-band mean/std/min/max/p2/p98 over training chips, nodata excluded
    index.csv    one row per chip: id, split, pixel offsets, map bounds, valid and positive fractions
    images/<id>.tif  Float32 chips (NaN = nodata), band descriptions = stack band names
    labels/<id>.tif  UInt8: 0 background, 1 landslide, 255 ignore (nodata or outside labelled ground)
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio import features
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import raster
from .errors import InputError
from .progress import Progress, check_canceled, or_null

IGNORE = 255
CLASSES = [
    {"value": 0, "name": "background", "color": "#00000000"},
    {"value": 1, "name": "landslide", "color": "#e8702a"},
]
CHIP_FORMAT = "landslide_mapper.chips"


# ---------------------------------------------------------------------------------------------- labels
@dataclass
class LabelSource:
    """Ground truth as burnable polygons (in the grid CRS) or as a raster aligned to the grid."""

    path: str
    shapes: list | None = None  # [(geojson geometry, value)] in grid CRS
    bboxes: np.ndarray | None = None  # (n, 4) xmin, ymin, xmax, ymax per shape
    raster_path: str | None = None


def _is_raster(path: str) -> bool:
    try:
        with rasterio.open(path):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not a raster GDAL reads"
        return False


def read_label_polygons(path: str, grid_crs, class_field: str | None = "class", layer: str | None = None) -> LabelSource:
    """Read polygons from a vector file, reprojected to `grid_crs`; features with class value > 0 are landslides.

    `class_field=None` burns every feature (exclusion zones, areas of interest).
    """
    from osgeo import ogr, osr

    ogr.UseExceptions()
    try:
        ds = ogr.Open(path)
    except RuntimeError as exc:
        raise InputError(f"Cannot open label layer '{path}': {exc}") from None
    if ds is None:
        raise InputError(f"'{path}' is neither a raster nor a vector layer GDAL/OGR can read.")
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise InputError(f"Label file '{path}' has no layer named '{layer}'.")
    defn = lyr.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if class_field is not None and class_field not in fields:
        raise InputError(
            f"Label layer '{path}' has no field '{class_field}'; its fields are: {', '.join(fields) or 'none'}."
        )
    if lyr.GetFeatureCount() == 0:
        raise InputError(f"Label layer '{path}' is empty: it has no features to learn from.")
    target = osr.SpatialReference()
    target.ImportFromWkt(grid_crs.to_wkt())
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    source = lyr.GetSpatialRef()
    transform = None
    if source is not None:
        source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        if not source.IsSame(target):
            transform = osr.CoordinateTransformation(source, target)
    shapes, boxes = [], []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        value = feat.GetField(class_field) if class_field is not None else 1
        if geom is None or value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"Field '{class_field}' of '{path}' must be numeric (1 = landslide, 0 = not); found '{value}'."
            ) from None
        if value <= 0:
            continue
        geom = geom.Clone()
        if transform is not None:
            geom.Transform(transform)
        xmin, xmax, ymin, ymax = geom.GetEnvelope()
        shapes.append((json.loads(geom.ExportToJson()), 1))
        boxes.append((xmin, ymin, xmax, ymax))
    return LabelSource(path=path, shapes=shapes, bboxes=np.array(boxes, dtype=float).reshape(-1, 4))


def open_labels(path: str, grid, class_field: str | None = "class", layer: str | None = None) -> LabelSource:
    """Labels for the grid of dataset `grid`: a raster (values > 0 = landslide) or polygons with a class field."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"Label file '{path}' does not exist.")
    if _is_raster(path):
        with raster.open_raster(path) as src, raster.aligned(src, grid, Resampling.nearest):
            pass  # raises a clear error when the label raster does not overlap the grid
        return LabelSource(path=path, raster_path=path)
    return read_label_polygons(path, grid.crs, class_field, layer)


def rasterize_labels(labels: LabelSource, grid, window: Window, grid_transform=None) -> np.ndarray:
    """UInt8 labels (0/1, 255 = unknown) for one window of `grid` (an open rasterio dataset)."""
    h, w = int(window.height), int(window.width)
    if labels.raster_path is not None:
        with raster.open_raster(labels.raster_path) as src, raster.aligned(src, grid, Resampling.nearest) as view:
            data, valid = raster.read_valid(view, 1, window)
        out = (data > 0).view(np.uint8)
        out[~valid] = IGNORE
        return out
    transform = grid.window_transform(window)
    xmin, ymax = transform * (0, 0)
    xmax, ymin = transform * (w, h)
    b = labels.bboxes
    hit = (b[:, 0] <= xmax) & (b[:, 2] >= xmin) & (b[:, 1] <= ymax) & (b[:, 3] >= ymin) if len(b) else []
    shapes = [labels.shapes[i] for i in np.flatnonzero(hit)]
    if not shapes:
        return np.zeros((h, w), dtype=np.uint8)
    return features.rasterize(shapes, out_shape=(h, w), transform=transform, fill=0, dtype="uint8")


# ---------------------------------------------------------------------------------------------- statistics
class BandStatistics:
    """Streaming per-band mean/std/min/max and percentiles (from a bounded random sample), NaN excluded."""

    SAMPLE = 200_000

    def __init__(self, names: Sequence[str], seed: int = 0):
        n = len(names)
        self.names = list(names)
        self.count = np.zeros(n)
        self.total = np.zeros(n)
        self.total_sq = np.zeros(n)
        self.min = np.full(n, np.inf)
        self.max = np.full(n, -np.inf)
        self.samples: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.rng = np.random.default_rng(seed)

    def update(self, data: np.ndarray) -> None:
        for i, band in enumerate(data):
            v = band[np.isfinite(band)].astype(np.float64)
            if v.size == 0:
                continue
            self.count[i] += v.size
            self.total[i] += v.sum()
            self.total_sq[i] += np.square(v).sum()
            self.min[i] = min(self.min[i], v.min())
            self.max[i] = max(self.max[i], v.max())
            keep = max(1, min(v.size, 4096))
            self.samples[i].append(self.rng.choice(v, size=keep, replace=False))
            if sum(s.size for s in self.samples[i]) > 2 * self.SAMPLE:
                pooled = np.concatenate(self.samples[i])
                self.samples[i] = [self.rng.choice(pooled, size=self.SAMPLE, replace=False)]

    def result(self) -> list[dict]:
        out = []
        for i, name in enumerate(self.names):
            if self.count[i] == 0:
                raise InputError(f"Band '{name}' has no valid (non-nodata) pixel in the training chips.")
            mean = self.total[i] / self.count[i]
            var = max(self.total_sq[i] / self.count[i] - mean**2, 0.0)
            pooled = np.concatenate(self.samples[i])
            p2, p98 = np.percentile(pooled, [2, 98])
            out.append(dict(name=name, mean=float(mean), std=float(math.sqrt(var)) or 1.0,
                            min=float(self.min[i]), max=float(self.max[i]), p2=float(p2), p98=float(p98),
                            count=int(self.count[i])))
        return out


# ---------------------------------------------------------------------------------------------- export
@dataclass
class ChipExport:
    folder: Path
    bands: list[str]
    tile_size: int
    counts: dict = field(default_factory=dict)  # split -> {"chips", "pixels", "positive_pixels"}


def _grid_positions(length: int, tile: int, stride: int) -> list[int]:
    if length < tile:
        return []
    pos = list(range(0, length - tile + 1, stride))
    if pos[-1] != length - tile:
        pos.append(length - tile)  # cover the far edge too
    return pos


def _assign_block_splits(block_positives: dict, val_fraction: float, seed: int) -> dict:
    """Blocks → 'train'/'validation', stratified so validation gets landslide blocks too."""
    rng = np.random.default_rng(seed)
    splits = {}
    for group in ([b for b, p in block_positives.items() if p > 0], [b for b, p in block_positives.items() if p == 0]):
        group = sorted(group)
        rng.shuffle(group)
        n_val = int(round(len(group) * val_fraction))
        if val_fraction > 0 and n_val == 0 and len(group) >= 2:
            n_val = 1
        for k, b in enumerate(group):
            splits[b] = "validation" if k < n_val else "train"
    return splits


def _prepare_output_folder(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()) and not (folder / "chips.json").exists():
        raise InputError(
            f"Output folder '{folder}' is not empty and holds no earlier chip export; choose an empty folder "
            f"so nothing of yours is overwritten."
        )


def export_chips(
    stack_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    out_folder: str | os.PathLike,
    *,
    class_field: str = "class",
    label_layer: str | None = None,
    tile_size: int = 128,
    stride: int = 64,
    extent: Sequence[float] | None = None,
    validation_fraction: float = 0.2,
    split_block: int | None = None,
    min_valid_fraction: float = 0.5,
    seed: int = 0,
    progress: Progress | None = None,
) -> ChipExport:
    """Cut a stack and its labels into tile_size chips on a stride grid, split by spatial blocks.

    A chip belongs to the block holding its top-left pixel; chips reaching into a block of another split are
    dropped, so no pixel is shared between training and validation.
    """
    progress = or_null(progress)
    if tile_size < 16 or stride < 1:
        raise InputError(f"Tile size must be ≥ 16 px and stride ≥ 1 px (got {tile_size} and {stride}).")
    if not 0.0 <= validation_fraction < 1.0:
        raise InputError(f"Validation fraction must be in [0, 1) (got {validation_fraction}).")
    out_folder = Path(out_folder).resolve()
    _prepare_output_folder(out_folder)
    block_px = split_block or tile_size * 4
    with raster.open_raster(stack_path) as src:
        names = raster.band_names(src)
        win = raster.window_from_extent(src, extent)
        if win.width < tile_size or win.height < tile_size:
            raise InputError(
                f"Tile size {tile_size} px is larger than the area to cut from '{stack_path}' "
                f"({int(win.width)}×{int(win.height)} px)."
            )
        labels = open_labels(str(labels_path), src, class_field, label_layer)
        if labels.bboxes is not None:
            lb = labels.bboxes
            sb = src.window_bounds(win)
            inside = (lb[:, 0] <= sb[2]) & (lb[:, 2] >= sb[0]) & (lb[:, 1] <= sb[3]) & (lb[:, 3] >= sb[1])
            if not inside.any():
                raise InputError(
                    f"None of the {len(lb)} landslide polygons in '{labels_path}' falls inside the raster area "
                    f"being cut; check the label layer and the extent."
                )
        rows = _grid_positions(int(win.height), tile_size, stride)
        cols = _grid_positions(int(win.width), tile_size, stride)

        # Pass 1 (labels only): landslide pixels per split block, to stratify the split.
        block_pos = {}
        for by in range(0, int(win.height), block_px):
            for bx in range(0, int(win.width), block_px):
                check_canceled(progress)
                bw = Window(win.col_off + bx, win.row_off + by, min(block_px, win.width - bx),
                            min(block_px, win.height - by))
                lab = rasterize_labels(labels, src, bw)
                block_pos[(by // block_px, bx // block_px)] = int((lab == 1).sum())
        splits = _assign_block_splits(block_pos, validation_fraction, seed)

        def split_of(r, c):
            s = {splits[((r + dr) // block_px, (c + dc) // block_px)]
                 for dr in (0, tile_size - 1) for dc in (0, tile_size - 1)}
            return s.pop() if len(s) == 1 else None

        stats = BandStatistics(names, seed)
        counts = {s: {"chips": 0, "pixels": 0, "positive_pixels": 0} for s in ("train", "validation")}
        index_rows = []
        with raster.atomic_output(out_folder, is_dir=True) as tmp:
            (tmp / "images").mkdir()
            (tmp / "labels").mkdir()
            for k, r in enumerate(rows):
                check_canceled(progress)
                strip = Window(win.col_off, win.row_off + r, win.width, tile_size)
                data = raster.read_float(src, list(range(1, src.count + 1)), strip)
                lab_strip = rasterize_labels(labels, src, strip)
                valid_strip = np.all(np.isfinite(data), axis=0)
                for c in cols:
                    split = split_of(r, c)
                    if split is None:
                        continue
                    valid = valid_strip[:, c:c + tile_size]
                    valid_fraction = float(valid.mean())
                    if valid_fraction < min_valid_fraction:
                        continue
                    chip = data[:, :, c:c + tile_size]
                    lab = np.where(valid, lab_strip[:, c:c + tile_size], IGNORE).astype(np.uint8)
                    chip_id = f"{len(index_rows):06d}"
                    cw = Window(strip.col_off + c, strip.row_off, tile_size, tile_size)
                    transform = src.window_transform(cw)
                    _write_chip(tmp / "images" / f"{chip_id}.tif", chip, names, src.crs, transform, np.nan)
                    _write_chip(tmp / "labels" / f"{chip_id}.tif", lab[None], ["label"], src.crs, transform, IGNORE)
                    positives = int((lab == 1).sum())
                    n_valid = int(valid.sum())
                    counts[split]["chips"] += 1
                    counts[split]["pixels"] += n_valid
                    counts[split]["positive_pixels"] += positives
                    if split == "train":
                        stats.update(chip)
                    bounds = src.window_bounds(cw)
                    index_rows.append(dict(id=chip_id, split=split, row=int(cw.row_off), col=int(cw.col_off),
                                           xmin=bounds[0], ymin=bounds[1], xmax=bounds[2], ymax=bounds[3],
                                           valid_fraction=round(valid_fraction, 4),
                                           positive_fraction=round(positives / max(n_valid, 1), 6)))
                progress.set_progress(100.0 * (k + 1) / len(rows))
            if counts["train"]["chips"] == 0:
                raise InputError(
                    f"No training chip could be cut from '{stack_path}': every candidate tile had less than "
                    f"{min_valid_fraction:.0%} valid (non-nodata) pixels or straddled a split boundary."
                )
            _write_index(tmp / "index.csv", index_rows)
            band_stats = stats.result()
            (tmp / "stats.json").write_text(json.dumps({"computed_on": "train", "bands": band_stats}, indent=2))
            manifest = dict(format=CHIP_FORMAT, version=1, bands=names, tile_size=tile_size, stride=stride,
                            crs=src.crs.to_wkt(), pixel_size=list(raster.pixel_size(src)), classes=CLASSES,
                            ignore_value=IGNORE, split_block_px=block_px, counts=counts,
                            source=dict(stack=str(stack_path), labels=str(labels_path), class_field=class_field))
            (tmp / "chips.json").write_text(json.dumps(manifest, indent=2))
    for split, c in counts.items():
        progress.log(f"{split}: {c['chips']} chips, {c['pixels']} valid px, {c['positive_pixels']} landslide px")
    return ChipExport(folder=out_folder, bands=names, tile_size=tile_size, counts=counts)


def _write_chip(path: Path, data: np.ndarray, names, crs, transform, nodata) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
        for i, n in enumerate(names, start=1):
            dst.set_band_description(i, n)


def _write_index(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class ChipSet:
    """Chips of one folder held in memory: images (N, C, H, W) float32 with NaN, labels (N, H, W) uint8."""

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


def load_chips(folder: str | os.PathLike, max_bytes: int = 4 << 30) -> ChipSet:
    """Load a native chip folder, checking its manifest, index and tiles."""
    folder = Path(folder)
    manifest_path = folder / "chips.json"
    if not manifest_path.exists():
        raise InputError(f"'{folder}' is not a chip folder: chips.json is missing (export chips first).")
    try:
        manifest = json.loads(manifest_path.read_text())
        stats = json.loads((folder / "stats.json").read_text())["bands"]
        with open(folder / "index.csv", newline="") as f:
            index = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"Chip folder '{folder}' is incomplete or damaged: {exc}") from None
    if manifest.get("format") != CHIP_FORMAT:
        raise InputError(f"'{manifest_path}' is not a Landslide Mapper chip manifest.")
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
            with rasterio.open(p) as src:
                if (src.height, src.width) != (t, t) or (kind == "images" and src.count != c):
                    raise InputError(f"Chip '{p}' is {src.count}×{src.height}×{src.width}, expected "
                                     f"{c if kind == 'images' else 1}×{t}×{t}.")
                if kind == "images":
                    arr[i] = raster.read_float(src, list(range(1, c + 1)))
                else:
                    arr[i] = src.read(1)
    return ChipSet(folder, manifest, stats, images, labels, np.array([r["split"] for r in index]))
