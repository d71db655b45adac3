"""From probabilities to a landslide map people can use: pixel masks (slope, water, clouds, exclusion zones),
polygons with attributes, merging of nearby pieces (buffer-dissolve) and removal of small objects.
"""
from __future__ import annotations

import errno
import json
import math
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio import features
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import raster
from ..common.errors import InputError
from ..common.outputs import atomic_output
from ..common.progress import Progress, check_canceled, or_null

SCL_CLOUDS = (3, 8, 9, 10)  # cloud shadow, cloud medium/high probability, thin cirrus


@dataclass
class MaskRules:
    """Pixel rules that veto a landslide: too flat, water, cloud, or inside a user's exclusion zone."""

    slope_raster: str | None = None  # band named 'slope' (else band 1), degrees
    min_slope: float = 0.0
    water_raster: str | None = None  # Sentinel-2 with bands B03 and B08: NDWI > ndwi_threshold is water
    ndwi_threshold: float = 0.0
    scl_raster: str | None = None  # Sentinel-2 scene classification
    scl_classes: Sequence[int] = field(default_factory=lambda: SCL_CLOUDS)
    exclude: str | None = None  # raster (non-zero = excluded) or polygons (inside = excluded)
    exclude_layer: str | None = None

    def any(self) -> bool:
        return bool((self.slope_raster and self.min_slope > 0) or self.water_raster or self.scl_raster
                    or self.exclude)


def _band_or_first(src, name: str) -> int:
    names = [n.lower() for n in raster.band_names(src)]
    return names.index(name.lower()) + 1 if name.lower() in names else 1


@contextmanager
def open_mask_rules(rules: MaskRules | None, grid):
    """Yield `allowed(window) -> bool array` for windows of `grid`, reading each rule's raster aligned to it."""
    if rules is None or not rules.any():
        yield None
        return
    from .labels import open_labels, rasterize_labels

    with ExitStack() as stack:
        def view(path, resampling=Resampling.bilinear):
            ds = stack.enter_context(raster.open_raster(path))
            return stack.enter_context(raster.aligned(ds, grid, resampling))

        checks = []
        if rules.slope_raster and rules.min_slope > 0:
            slope = view(rules.slope_raster)
            band = _band_or_first(slope, "slope")
            checks.append(lambda w: ~(raster.read_float(slope, band, w) < rules.min_slope))
        if rules.water_raster:
            water = view(rules.water_raster)
            green, nir = raster.band_index(water, "B03"), raster.band_index(water, "B08")

            def not_water(w):
                g, n = raster.read_float(water, [green, nir], w)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ndwi = (g - n) / (g + n)
                return ~(ndwi > rules.ndwi_threshold)

            checks.append(not_water)
        if rules.scl_raster:
            scl = view(rules.scl_raster, Resampling.nearest)
            band = _band_or_first(scl, "SCL")
            checks.append(lambda w: ~np.isin(raster.read_raw(scl, band, window=w), list(rules.scl_classes)))
        if rules.exclude:
            zones = open_labels(rules.exclude, grid, class_field=None, layer=rules.exclude_layer,
                                what="Exclusion-zone layer (EXCLUDE)")
            checks.append(lambda w: rasterize_labels(zones, grid, w) != 1)

        def allowed(window: Window) -> np.ndarray:
            ok = np.ones((int(window.height), int(window.width)), dtype=bool)
            for check in checks:
                ok &= check(window)
            return ok

        yield allowed


# ------------------------------------------------------------------------------------------------- polygons
@dataclass
class PolygonOptions:
    min_area_m2: float = 0.0
    merge_distance: float = 0.0  # metres: pieces closer than this become one landslide
    slope_raster: str | None = None  # adds max_slope to each polygon


def touches_row(env, y: float, eps: float) -> bool:
    # env = (minx, maxx, miny, maxy) from OGR
    return env[2] - eps <= y <= env[3] + eps


def merge_across_border(open_polys: list, new_polys: list, y: float, eps: float) -> tuple[list, list]:
    """Union polygons of two strips that share an edge along the strip border y. Returns (merged, untouched_open)."""
    top = [p for p in new_polys if touches_row(p.GetEnvelope(), y, eps)]
    rest = [p for p in new_polys if not touches_row(p.GetEnvelope(), y, eps)]
    items = open_polys + top
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(open_polys):
        for j, b in enumerate(top, start=len(open_polys)):
            if a.Intersects(b) and a.Intersection(b).Length() > 0:  # shared edge, not a corner
                parent[find(i)] = find(j)
    groups: dict[int, list] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    merged, finished = list(rest), []
    for members in groups.values():
        if all(i < len(open_polys) for i in members):
            finished.append(items[members[0]])  # an open polygon that continues nowhere
            continue
        geom = items[members[0]]
        for i in members[1:]:
            geom = geom.Union(items[i])
        merged.append(geom)
    return merged, finished


def _strip_polygons(mask_src, window: Window) -> list:
    from osgeo import ogr

    data = mask_src.read(1, window=window)
    positive = data == 1
    if not positive.any():
        return []
    transform = mask_src.window_transform(window)
    out = []
    for geom, _ in features.shapes(positive.astype(np.uint8), mask=positive, transform=transform):
        out.append(ogr.CreateGeometryFromJson(json.dumps(geom)))
    return out


def _metres_to_map_units(distance: float, grid) -> float:
    """A distance in metres in the grid's units (degrees of longitude at the grid's centre when geographic)."""
    if grid.crs is None or not grid.crs.is_geographic:
        return distance
    latitude = (grid.bounds.top + grid.bounds.bottom) / 2
    return distance / (111_320.0 * max(math.cos(math.radians(latitude)), 1e-6))


def equal_area_transform(crs):
    """OGR transform to an equal-area CRS when the grid is geographic (areas in m², not degrees²)."""
    from osgeo import osr

    if crs is None or not crs.is_geographic:
        return None
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromWkt(crs.to_wkt())
    dst.ImportFromEPSG(6933)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(src, dst)


def _strip_merged_polygons(src, block: int, progress: Progress) -> list:
    """Polygons of a 0/1 mask read in strips; pieces cut by a strip border are merged across it."""
    eps = abs(src.transform.e) * 1e-3
    polys, open_polys = [], []
    n_strips = -(-src.height // block)
    for k, row in enumerate(range(0, src.height, block)):
        check_canceled(progress)
        window = Window(0, row, src.width, min(block, src.height - row))
        top_y = (src.transform * (0, row))[1]
        new = _strip_polygons(src, window)
        current, finished = merge_across_border(open_polys, new, top_y, eps) if open_polys else (new, [])
        polys += finished
        bottom_y = (src.transform * (0, row + window.height))[1]
        open_polys = [p for p in current if touches_row(p.GetEnvelope(), bottom_y, eps)]
        polys += [p for p in current if not touches_row(p.GetEnvelope(), bottom_y, eps)]
        progress.set_progress(80.0 * (k + 1) / n_strips)
    return polys + open_polys


def _closed_gaps(polys: list, options: "PolygonOptions", src) -> list:
    """Polygons closer than the merge distance joined (buffer out, dissolve, buffer back in)."""
    from osgeo import ogr

    if options.merge_distance <= 0 or not polys:
        return polys
    half = _metres_to_map_units(options.merge_distance, src) / 2.0
    union = ogr.Geometry(ogr.wkbMultiPolygon)
    for p in polys:
        union.AddGeometry(p.Buffer(half, 2))
    closed = union.UnionCascaded().Buffer(-half, 2)
    polys = [closed.GetGeometryRef(i).Clone() for i in range(closed.GetGeometryCount())] \
        if closed.GetGeometryType() in (ogr.wkbMultiPolygon, ogr.wkbMultiPolygon25D) else [closed]
    return [p for p in polys if not p.IsEmpty()]


def polygonize_mask(
    mask_path: str | os.PathLike,
    out_path: str | os.PathLike,
    probability_path: str | os.PathLike | None = None,
    options: PolygonOptions | None = None,
    block: int = raster.DEFAULT_BLOCK,
    progress: Progress | None = None,
) -> int:
    """Write landslide polygons (GeoPackage) from a 0/1 mask, strip by strip, merging pieces cut by strip borders.

    Attributes: area_m2, mean_prob and max_prob (when a probability raster is given), max_slope (with a slope
    raster). Returns the number of polygons written.
    """
    from osgeo import ogr

    options = options or PolygonOptions()
    check_options(options)
    progress = or_null(progress)
    ogr.UseExceptions()
    with raster.open_raster(mask_path) as src:
        polys = _closed_gaps(_strip_merged_polygons(src, block, progress), options, src)
        area_m2 = area_in_m2(src.crs)
        with ExitStack() as stack:
            prob = stack.enter_context(raster.open_raster(probability_path)) if probability_path else None
            slope = None
            if options.slope_raster:
                slope_ds = stack.enter_context(raster.open_raster(options.slope_raster))
                slope = stack.enter_context(raster.aligned(slope_ds, src))

            def rows():
                for i, geom in enumerate(polys):
                    if i % 200 == 0:
                        check_canceled(progress)
                        progress.set_progress(80.0 + 20.0 * i / max(len(polys), 1))
                    area = area_m2(geom)
                    if area < options.min_area_m2:
                        continue
                    values = {"area_m2": float(area)}
                    inside, win = polygon_pixels(geom, src)
                    if prob is not None and inside.any():
                        p = raster.read_float(prob, 1, win)[inside]
                        if np.isfinite(p).any():
                            values.update(mean_prob=float(np.nanmean(p)), max_prob=float(np.nanmax(p)))
                    if slope is not None and inside.any():
                        s = raster.read_float(slope, _band_or_first(slope, "slope"), win)[inside]
                        if np.isfinite(s).any():
                            values["max_slope"] = float(np.nanmax(s))
                    yield geom, values

            fields = [(name, ogr.OFTReal) for name in ("area_m2", "mean_prob", "max_prob", "max_slope")]
            written = write_polygon_layer(out_path, src.crs, "landslides", fields, rows())
    progress.set_progress(100.0)
    progress.log(f"{written} landslide polygons written to {out_path}")
    return written


def area_in_m2(crs):
    """A function giving a polygon's area in square metres (through an equal-area projection when needed)."""
    to_area = equal_area_transform(crs)

    def area_m2(geom) -> float:
        if to_area is None:
            return geom.GetArea()
        g = geom.Clone()
        g.Transform(to_area)
        return g.GetArea()
    return area_m2


def write_polygon_layer(out_path, crs, layer_name: str, fields, rows) -> int:
    """Write (geometry, {field: value}) rows as a multipolygon layer in one transaction, read back to check that
    every feature reached the disk. `fields`: (name, OGR type) or (name, OGR type, width). Returns the count."""
    from osgeo import ogr, osr

    with atomic_output(out_path) as tmp, raster.ogr_writing(out_path):
        ds = ogr.GetDriverByName(vector_driver(out_path)).CreateDataSource(str(tmp))
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs.to_wkt())
        layer = ds.CreateLayer(layer_name, srs, ogr.wkbMultiPolygon)
        for name, kind, *width in fields:
            definition = ogr.FieldDefn(name, kind)
            if width:
                definition.SetWidth(width[0])
            layer.CreateField(definition)
        written = 0
        layer.StartTransaction()
        for geom, values in rows:
            feat = ogr.Feature(layer.GetLayerDefn())
            for name, value in values.items():
                feat.SetField(name, value)
            feat.SetGeometry(ogr.ForceToMultiPolygon(geom))
            if layer.CreateFeature(feat) != ogr.OGRERR_NONE:
                raise OSError(errno.EIO, "writing a polygon failed", str(out_path))
            written += 1
        if layer.CommitTransaction() != ogr.OGRERR_NONE:
            raise OSError(errno.EIO, "saving the polygons failed", str(out_path))
        ds = None
        check_vector_written(tmp, written, out_path)
    return written


def check_vector_written(path, expected: int, output) -> None:
    """Refuse a vector file that does not read back with every feature (OGR reports a full disk only in its log)."""
    from osgeo import ogr

    ds = ogr.Open(str(path))
    count = ds.GetLayer(0).GetFeatureCount() if ds is not None and ds.GetLayerCount() else -1
    ds = None
    if count != expected:
        raise OSError(errno.ENOSPC if _low_space(output) else errno.EIO,
                      "the polygon file is incomplete", str(output))


def _low_space(path) -> bool:
    import shutil

    try:
        return shutil.disk_usage(Path(path).absolute().parent).free < 64 * 2**20
    except OSError:
        return False


def vector_driver(path) -> str:
    ext = os.path.splitext(str(path))[1].lower()
    return {".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf"}.get(ext, "GPKG")


def polygon_pixels(geom, grid) -> tuple[np.ndarray, Window]:
    """Boolean mask of the grid pixels inside `geom`, within the window of its bounding box."""
    minx, maxx, miny, maxy = geom.GetEnvelope()
    win = raster.window_from_extent(grid, (minx, miny, maxx, maxy))
    inside = features.rasterize([(json.loads(geom.ExportToJson()), 1)], out_shape=(int(win.height), int(win.width)),
                                transform=grid.window_transform(win), fill=0, dtype="uint8").astype(bool)
    return inside, win


def check_options(options: PolygonOptions) -> None:
    if options.min_area_m2 < 0 or options.merge_distance < 0:
        raise InputError("Minimum area and merge distance must not be negative.")
