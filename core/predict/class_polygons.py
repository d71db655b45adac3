"""Polygons of a class map: one feature per connected patch of a class (not the background), with a `class` value
and `class_name`, area and mean probability of that class; strips joined across their borders (bounded memory)."""
from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Sequence

import numpy as np
from rasterio import features
from rasterio.windows import Window

from .. import raster
from ...common.errors import InputError
from ...common.progress import Progress, check_canceled, or_null
from ..postprocess import area_in_m2, merge_across_border, polygon_pixels, touches_row, write_polygon_layer


def parse_class_areas(spec, classes: Sequence[dict], default: float = 0.0) -> dict[int, float]:
    """'bedrock=5000, 3=200' (class names or values = m²) → {value: minimum area}; other classes get `default`."""
    out = {int(c["value"]): float(default) for c in classes}
    if spec is None or not str(spec).strip():
        return out
    for item in str(spec).replace(";", ",").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        hits = [int(c["value"]) for c in classes if str(c["name"]).lower() == key.lower() or str(c["value"]) == key]
        try:
            area = float(value)
        except ValueError:
            area = -1.0
        if not sep or not hits or not area >= 0:
            listed = ", ".join(f"{c['value']} '{c['name']}'" for c in classes)
            raise InputError(f"Minimum areas per class (CLASS_MIN_AREAS) are 'class=m²' pairs separated by commas, "
                             f"e.g. 'bedrock=5000'; '{item.strip()}' is not one (classes: {listed}).")
        out[hits[0]] = area
    return out


def parse_class_list(spec, classes: Sequence[dict], parameter: str = "VETO_CLASSES") -> set[int] | None:
    """'landslide, 3' (class names or values) → {values}; empty → None (the default)."""
    if spec is None or not str(spec).strip():
        return None
    out = set()
    for token in str(spec).replace(";", ",").split(","):
        token = token.strip()
        if not token:
            continue
        hits = [int(c["value"]) for c in classes if str(c["name"]).lower() == token.lower() or str(c["value"]) == token]
        if not hits:
            listed = ", ".join(f"{c['value']} '{c['name']}'" for c in classes)
            raise InputError(f"The model has no class '{token}' ({parameter}); its classes are: {listed}.")
        out.update(hits)
    return out


def _class_patches(src, names: dict, background: int, block: int, progress: Progress) -> dict[int, list]:
    """Polygons of each class but the background, read in strips and merged across strip borders."""
    from osgeo import ogr

    eps = abs(src.transform.e) * 1e-3
    done: dict[int, list] = {v: [] for v in names}
    open_polys: dict[int, list] = {v: [] for v in names}
    n_strips = -(-src.height // block)
    for k, row in enumerate(range(0, src.height, block)):
        check_canceled(progress)
        window = Window(0, row, src.width, min(block, src.height - row))
        data = src.read(1, window=window)
        transform = src.window_transform(window)
        top_y = (src.transform * (0, row))[1]
        bottom_y = (src.transform * (0, row + window.height))[1]
        for value in names:
            if value == background:
                continue
            hit = data == value
            new = [ogr.CreateGeometryFromJson(json.dumps(g)) for g, _ in
                   features.shapes(hit.view(np.uint8), mask=hit, transform=transform)] if hit.any() else []
            if open_polys[value]:
                current, finished = merge_across_border(open_polys[value], new, top_y, eps)
            else:
                current, finished = new, []
            done[value] += finished
            open_polys[value] = [p for p in current if touches_row(p.GetEnvelope(), bottom_y, eps)]
            done[value] += [p for p in current if not touches_row(p.GetEnvelope(), bottom_y, eps)]
        progress.set_progress(80.0 * (k + 1) / n_strips)
    for value in names:
        done[value] += open_polys[value]
    return done


def polygonize_classes(class_map, out_path, classes: Sequence[dict], probability_path=None,
                       min_area_m2: dict[int, float] | None = None, block: int = raster.DEFAULT_BLOCK,
                       progress: Progress | None = None) -> int:
    """Write one polygon per connected patch of each class but the first (background) to a GeoPackage layer
    `classes` (fields class, class_name, area_m2, mean_prob); patches under their class's minimum area are dropped.
    Returns the number of polygons written."""
    from osgeo import ogr

    progress = or_null(progress)
    ogr.UseExceptions()
    background = int(classes[0]["value"])
    names = {int(c["value"]): str(c["name"]) for c in classes}
    channel = {int(c["value"]): k for k, c in enumerate(classes)}
    minimum = min_area_m2 or {}
    with raster.open_raster(class_map) as src:
        done = _class_patches(src, names, background, block, progress)
        area_m2 = area_in_m2(src.crs)
        with ExitStack() as stack:
            prob = stack.enter_context(raster.open_raster(probability_path)) if probability_path else None

            def rows():
                for value, polys in done.items():
                    for geom in polys:
                        area = area_m2(geom)
                        if area < minimum.get(value, 0.0):
                            continue
                        values = {"class": int(value), "class_name": names[value], "area_m2": float(area)}
                        if prob is not None:
                            inside, win = polygon_pixels(geom, src)
                            if inside.any():
                                p = raster.read_float(prob, channel[value] + 1, win)[inside]
                                if np.isfinite(p).any():
                                    values["mean_prob"] = float(np.nanmean(p))
                        yield geom, values

            fields = [("class", ogr.OFTInteger), ("class_name", ogr.OFTString, 128), ("area_m2", ogr.OFTReal),
                      ("mean_prob", ogr.OFTReal)]
            written = write_polygon_layer(out_path, src.crs, "classes", fields, rows())
    progress.set_progress(100.0)
    progress.log(f"{written} class polygons written to {out_path}")
    return written

