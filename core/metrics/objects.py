"""Landslides found and missed: connected objects counted per strip and joined across strip borders."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from ...common.errors import InputError
from .scores import ratio


@dataclass(frozen=True)
class ObjectRule:
    """How landslide objects are formed and when one counts as found.

    An object is a group of connected landslide pixels (8-connectivity: diagonal neighbours join). A real landslide
    is *detected* when the map covers at least `min_overlap` of its pixels (0: any single pixel); a mapped object is
    a *false object* when less than `min_overlap` of it (0: not a single pixel) lies on real landslides.
    """

    min_overlap: float = 0.0
    connectivity: int = 8
    size_classes_m2: tuple[float, ...] = (1_000.0, 5_000.0, 10_000.0, 50_000.0)  # upper edges of size classes

    def check(self) -> None:
        if not 0.0 <= self.min_overlap <= 1.0:
            raise InputError(f"Object overlap must be a share between 0 and 1; got {self.min_overlap}.")
        if self.connectivity not in (4, 8):
            raise InputError(f"Object connectivity must be 4 or 8 neighbours; got {self.connectivity}.")
        edges = list(self.size_classes_m2)
        if any(e <= 0 for e in edges) or edges != sorted(set(edges)):
            raise InputError(f"Size class limits must be positive and increasing (m²); got {edges}.")

    def class_names(self) -> list[str]:
        edges = list(self.size_classes_m2)
        if not edges:
            return ["all sizes"]
        names = [f"< {edges[0]:,.0f} m²"]
        names += [f"{a:,.0f}–{b:,.0f} m²" for a, b in zip(edges[:-1], edges[1:])]
        return names + [f"≥ {edges[-1]:,.0f} m²"]


class ObjectTally:
    """Connected objects of a binary map, tallied by size class, with memory bounded by one strip.

    Each strip is labelled with scipy.ndimage.label. Objects touching the strip's last row stay *open*: their
    running area and overlap are kept with their labels along that row. In the next strip, labels of its first row
    that touch open labels (vertically, or diagonally with 8-connectivity) are joined through the connected
    components of that link graph (a union-find). An object is tallied once no pixel of it reaches the next strip,
    so memory is one strip plus one row of open objects, whatever the raster size or the number of objects.
    """

    def __init__(self, rule: ObjectRule, pixel_area_m2: float):
        from scipy import ndimage

        self.rule = rule
        self.pixel_area_m2 = pixel_area_m2
        self.structure = ndimage.generate_binary_structure(2, 2 if rule.connectivity == 8 else 1)
        n = len(rule.size_classes_m2) + 1
        self.objects = np.zeros(n, dtype=np.int64)
        self.hits = np.zeros(n, dtype=np.int64)  # objects that meet the overlap rule
        self.pixels = np.zeros(n, dtype=np.int64)
        self.hit_pixels = np.zeros(n, dtype=np.int64)
        self._open_row: np.ndarray | None = None  # open-object ids (1..K) along the last row, 0 = none
        self._open_area = np.zeros(1, dtype=np.int64)  # per open id (index 0 unused)
        self._open_overlap = np.zeros(1, dtype=np.int64)

    def add(self, mask: np.ndarray, other: np.ndarray, last: bool = False) -> None:
        """Add the next strip: `mask` the objects' pixels, `other` the pixels that count as overlap."""
        from scipy import ndimage, sparse
        from scipy.sparse.csgraph import connected_components

        labels, n = ndimage.label(mask, self.structure)
        if labels.shape[0] == 0:
            return
        area = np.bincount(labels.ravel(), minlength=n + 1)
        overlap = np.bincount(labels[other], minlength=n + 1)
        n_open = len(self._open_area) - 1
        # Graph nodes: 0 (nothing), open ids 1..K, this strip's labels as K + label.
        node_area = np.concatenate([self._open_area, area[1:]])
        node_overlap = np.concatenate([self._open_overlap, overlap[1:]])
        a_list, b_list = [], []
        if self._open_row is not None and n_open:
            above, first = self._open_row, labels[0]
            pairs = [(above, first)]
            if self.rule.connectivity == 8:
                pairs += [(above[:-1], first[1:]), (above[1:], first[:-1])]
            for a, b in pairs:
                linked = (a > 0) & (b > 0)
                a_list.append(a[linked])
                b_list.append(b[linked].astype(np.int64) + n_open)
        size = n_open + n + 1
        if a_list:
            a_nodes, b_nodes = np.concatenate(a_list), np.concatenate(b_list)
            graph = sparse.coo_matrix((np.ones(len(a_nodes), dtype=np.int8), (a_nodes, b_nodes)), shape=(size, size))
            _, component = connected_components(graph, directed=False)
        else:
            component = np.arange(size)
        n_comp = int(component.max()) + 1
        comp_area = np.bincount(component, weights=node_area, minlength=n_comp).astype(np.int64)
        comp_overlap = np.bincount(component, weights=node_overlap, minlength=n_comp).astype(np.int64)
        still_open = np.zeros(n_comp, dtype=bool)
        if not last:
            bottom = labels[-1]
            still_open[component[bottom[bottom > 0].astype(np.int64) + n_open]] = True
        done = ~still_open & (comp_area > 0)
        self._tally(comp_area[done], comp_overlap[done])
        # Renumber the open objects 1..K' and remember them along this strip's last row.
        new_id = np.zeros(n_comp, dtype=np.int64)
        new_id[still_open] = np.arange(1, int(still_open.sum()) + 1)
        self._open_area = np.concatenate([[0], comp_area[still_open]])
        self._open_overlap = np.concatenate([[0], comp_overlap[still_open]])
        bottom = labels[-1].astype(np.int64)
        self._open_row = np.where(bottom > 0, new_id[component[bottom + n_open]], 0)

    def _tally(self, area: np.ndarray, overlap: np.ndarray) -> None:
        hit = (overlap > 0) & (overlap >= self.rule.min_overlap * area)
        cls = np.searchsorted(np.asarray(self.rule.size_classes_m2, dtype=float), area * self.pixel_area_m2,
                              side="right")
        n = len(self.objects)
        self.objects += np.bincount(cls, minlength=n)
        self.hits += np.bincount(cls[hit], minlength=n)
        self.pixels += np.bincount(cls, weights=area, minlength=n).astype(np.int64)
        self.hit_pixels += np.bincount(cls[hit], weights=area[hit], minlength=n).astype(np.int64)

    def finish(self) -> None:
        """Tally objects still open after the last strip (call once at the end)."""
        if len(self._open_area) > 1:
            self._tally(self._open_area[1:], self._open_overlap[1:])
        self._open_area, self._open_overlap = np.zeros(1, np.int64), np.zeros(1, np.int64)
        self._open_row = None


def object_metrics(truth: ObjectTally, predicted: ObjectTally) -> dict:
    """Landslides detected / missed by size class, false objects, object precision/recall/F1."""
    rule = truth.rule
    n_true, n_found = int(truth.objects.sum()), int(truth.hits.sum())
    n_pred, n_correct = int(predicted.objects.sum()), int(predicted.hits.sum())
    recall, precision = ratio(n_found, n_true), ratio(n_correct, n_pred)
    classes = []
    for k, name in enumerate(rule.class_names()):
        lo = 0.0 if k == 0 else rule.size_classes_m2[k - 1]
        hi = rule.size_classes_m2[k] if k < len(rule.size_classes_m2) else None
        classes.append({
            "size_class": name, "min_m2": lo, "max_m2": hi,
            "landslides": int(truth.objects[k]), "detected": int(truth.hits[k]),
            "missed": int(truth.objects[k] - truth.hits[k]),
            "recall": ratio(int(truth.hits[k]), int(truth.objects[k])),
            "landslide_area_m2": float(truth.pixels[k] * truth.pixel_area_m2),
            "detected_area_m2": float(truth.hit_pixels[k] * truth.pixel_area_m2),
            "mapped_objects": int(predicted.objects[k]),
            "false_objects": int(predicted.objects[k] - predicted.hits[k]),
        })
    return {
        "rule": {"min_overlap": rule.min_overlap, "connectivity": rule.connectivity},
        "pixel_area_m2": truth.pixel_area_m2,
        "landslides": n_true, "detected": n_found, "missed": n_true - n_found,
        "mapped_objects": n_pred, "correct_objects": n_correct, "false_objects": n_pred - n_correct,
        "object_recall": recall, "object_precision": precision,
        "object_f1": (2 * recall * precision / (recall + precision)
                      if recall is not None and precision is not None and recall + precision > 0 else None),
        "size_classes": classes,
    }


def pixel_area_m2(src, window: Window) -> float:
    """Ground area of one pixel in m² (projected CRS: exact; geographic: on the sphere at the window's centre)."""
    a, e = abs(src.transform.a), abs(src.transform.e)
    crs = src.crs
    if crs is not None and crs.is_geographic:
        centre_row = window.row_off + window.height / 2
        lat = math.radians((src.transform * (0, centre_row))[1])
        r = 6_371_008.8
        return r * r * math.radians(a) * abs(math.sin(lat + math.radians(e) / 2) - math.sin(lat - math.radians(e) / 2))
    factor = 1.0
    if crs is not None:
        try:
            factor = float(crs.linear_units_factor[1])
        except Exception:  # noqa: BLE001 - unknown units: assume metres
            factor = 1.0
    return a * e * factor * factor
