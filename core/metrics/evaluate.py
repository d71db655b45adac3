"""Evaluation and comparison of predictions against the truth, streamed over strips (bounded memory)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from rasterio.warp import Resampling
from rasterio.windows import Window

from .. import raster
from ..labels import IGNORE, hits, open_labels, rasterize_labels
from ...common.errors import InputError
from ...common.progress import Progress, check_canceled, or_null
from .boundaries import BoundaryTally
from .codes import (
    BOTH_FN,
    BOTH_FP,
    BOTH_TN,
    BOTH_TP,
    COMPARISON_CLASSES,
    CONFUSION_COLOURS,
    FN,
    FP,
    NODATA,
    ONLY_A_FP,
    ONLY_A_TP,
    ONLY_B_FP,
    ONLY_B_TP,
    TN,
    TP,
)
from .objects import ObjectRule, ObjectTally, object_metrics, pixel_area_m2
from .reports import write_comparison_report, write_evaluation_report
from .results import Comparison, Evaluation
from .scores import (
    Confusion,
    ProbabilityHistogram,
    best_rows,
    exact_threshold,
    format_metrics,
    scores,
    threshold_sweep,
)

STRIP_BLOCK = 2048  # strips of about 2048² = 4 M pixels: 16 MB per float32 band, few per-strip overheads


def strip_windows(window: Window, block: int = STRIP_BLOCK) -> Iterator[Window]:
    """Full-width strips of `window` holding about block² pixels each (whole rows, so objects can be joined)."""
    width, height = int(window.width), int(window.height)
    rows = max(1, (block * block) // max(width, 1))
    if rows > 256:
        rows -= rows % 256  # whole rows of 256-pixel tiles: each tile is decoded and compressed once
    for r in range(0, height, rows):
        yield Window(window.col_off, window.row_off + r, width, min(rows, height - r))


@dataclass
class _Sources:
    grid: object  # the first prediction: its grid is the evaluation grid
    predictions: list  # datasets on that grid (aligned views)
    truth: object  # chips.LabelSource
    area: object | None
    window: Window

    def read(self, w: Window, thresholds: Sequence[float | None]) -> tuple[list, list, np.ndarray, np.ndarray]:
        """Per prediction (predicted positive, raw values) and truth positive and common valid mask for `w`."""
        labels = rasterize_labels(self.truth, self.grid, w)
        valid = labels != IGNORE
        if self.area is not None:
            valid &= rasterize_labels(self.area, self.grid, w) == 1
        raws = []
        for src in self.predictions:
            data, ok = raster.read_valid(src, 1, w)
            valid &= ok
            raws.append(data)
        predicted = []
        for data, t in zip(raws, thresholds):
            p = (data >= t) if t is not None else (data > 0)
            p &= valid
            predicted.append(p)
        positive = labels == 1
        positive &= valid
        return predicted, raws, positive, valid


def _open_prediction(path):
    """Open a prediction; a floating-point one so that several threads decode the tiles of each strip.

    Decoding a DEFLATE float32 probability is the slowest step of an evaluation (threads ~1.6× faster here);
    for a uint8 mask the threads cost more than they save.
    """
    src = raster.open_raster(path)
    if np.dtype(src.dtypes[0]).kind != "f":
        return src
    src.close()
    return raster.open_raster(path, num_threads="ALL_CPUS")


@contextmanager
def open_sources(predictions: Sequence, truth_path, truth_field, truth_layer, area_path, area_layer,
                  extent, parameter: str = "PREDICTION") -> Iterator[_Sources]:
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        grid = stack.enter_context(_open_prediction(predictions[0]))
        views = [grid]
        for path in predictions[1:]:
            src = stack.enter_context(_open_prediction(path))
            views.append(stack.enter_context(raster.aligned(src, grid, Resampling.nearest)))
        truth = open_labels(str(truth_path), grid, truth_field, truth_layer, what="Truth layer (TRUTH)")
        area = open_labels(str(area_path), grid, None, area_layer, what="Evaluation area (EVALUATION_AREA)") \
            if area_path else None
        _check_overlap(f"'{predictions[0]}' ({parameter})", grid.bounds, truth, truth_path, truth_field, area,
                       area_path)
        yield _Sources(grid, views, truth, area, raster.window_from_extent(grid, extent))


def _check_overlap(prediction: str, bounds, truth, truth_path, truth_field, area, area_path) -> None:
    """Refuse truth polygons (or evaluation-area polygons) of which none lies on the prediction: every score would
    then measure the mismatch of two places, not the prediction. (Truth that only misses a chosen EXTENT or
    evaluation area still scores false alarms: that is a warning of the evaluation, not a refusal.)"""
    box = "(bounds " + ", ".join(f"{v:.10g}" for v in bounds) + ")"
    if truth.bboxes is not None and not len(truth.bboxes):
        raise InputError(f"Truth layer '{truth_path}' (TRUTH) holds no landslide polygon (no feature with a class "
                         f"above 0 in field '{truth_field}'), so there is nothing to score prediction {prediction} "
                         f"against. Check the layer and its class field (TRUTH_FIELD), then run again.")
    if truth.bboxes is not None and not len(hits(truth.bboxes, bounds)):
        raise InputError(f"None of the {len(truth.bboxes)} landslide polygons of truth '{truth_path}' (TRUTH) lies "
                         f"on prediction {prediction} {box}: they map different places, so no score "
                         f"would mean anything. Check that both cover the same area and that the truth layer's CRS "
                         f"is right, then run again.")
    if area is not None and area.bboxes is not None and not len(hits(area.bboxes, bounds)):
        raise InputError(f"Evaluation area '{area_path}' (EVALUATION_AREA) does not overlap prediction "
                         f"{prediction} {box}, so no pixel could be scored. Check that both cover the same "
                         f"area and that the area layer's CRS is right, then run again.")


PROBABILITY_TOLERANCE = 1e-6  # float rounding allowed beyond 0 and 1


def _check_probability_range(raw: np.ndarray, valid: np.ndarray, seen: list[float], path, parameter: str,
                             advice: str, nodata=None) -> None:
    """Refuse a raster read as probabilities that holds values outside 0–1 (±Inf included, unless it is the declared
    nodata value); `seen` = [lowest, highest] so far."""
    top, bottom = (np.inf, -np.inf) if raw.dtype.kind == "f" else (np.iinfo(raw.dtype).max, np.iinfo(raw.dtype).min)
    seen[0] = min(seen[0], float(np.min(raw, where=valid, initial=top)))
    seen[1] = max(seen[1], float(np.max(raw, where=valid, initial=bottom)))
    if raw.dtype.kind == "f":  # read_valid counts ±Inf as nodata; in a probability it is a broken value
        infinite = np.isinf(raw)
        if nodata is not None and np.isinf(nodata):
            infinite &= raw != nodata
        if infinite.any():
            seen[0] = min(seen[0], float(np.min(raw, where=infinite, initial=np.inf)))
            seen[1] = max(seen[1], float(np.max(raw, where=infinite, initial=-np.inf)))
    if seen[0] < -PROBABILITY_TOLERANCE or seen[1] > 1.0 + PROBABILITY_TOLERANCE:
        raise InputError(f"Prediction '{path}' ({parameter}) is read as a probability but holds values from "
                         f"{seen[0]:.4g} to {seen[1]:.4g}; a probability lies between 0 and 1, so every threshold "
                         f"and score would be meaningless. {advice}")


def _is_probability(src, is_probability: bool | None) -> bool:
    return np.dtype(src.dtypes[0]).kind == "f" if is_probability is None else bool(is_probability)


def _threshold(src, probability: bool, threshold: float) -> float | None:
    if not probability:
        return None
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"The threshold must be between 0 and 1 for probability raster '{src.name}'; "
                         f"got {threshold}.")
    return exact_threshold(src.dtypes[0], threshold)


@contextmanager
def code_raster(path, grid, window: Window, description: str, codes: str, colours: dict[int, str]):
    """A uint8 class map with an embedded colour table, so it shows in its colours in any GIS (QGIS styles it too)."""
    if not path:
        yield None
        return
    with raster.create_raster(path, width=int(window.width), height=int(window.height), crs=grid.crs,
                              transform=grid.window_transform(window), dtype="uint8", descriptions=[description],
                              nodata=NODATA, tags={"LANDSLIDE_MAPPER": description, "CODES": codes}, fast=True) as dst:
        table = {NODATA: (255, 255, 255, 0)}
        table.update({v: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) + (255,) for v, c in colours.items()})
        dst.write_colormap(1, table)
        yield dst


@contextmanager
def _stream(s: _Sources, cuts: Sequence, block: int, out_path=None, description: str = "", codes: str = "",
            colours: dict | None = None):
    """Strips of the evaluation window with their data, and `write(code, strip)` into an optional code raster.

    The next strip is read in a background thread while the caller works on this one, and each code strip is
    compressed and written in the background too; only one thread ever touches a dataset at a time, and every
    thread has finished before the inputs or the output are closed (or the output is dropped after an error).
    """
    strips = list(strip_windows(s.window, block))
    with ExitStack() as stack:
        dst = stack.enter_context(code_raster(out_path, s.grid, s.window, description, codes, colours or {}))
        pool = stack.enter_context(ThreadPoolExecutor(2))  # closed first: waits for the last read and write
        pending: list = []

        def write(code: np.ndarray, w: Window) -> None:
            for job in pending:
                job.result()
            pending.clear()
            target = Window(0, w.row_off - s.window.row_off, w.width, w.height)
            pending.append(pool.submit(dst.write, code[None], window=target))

        def with_data() -> Iterator[tuple[int, Window, tuple]]:
            ahead = pool.submit(s.read, strips[0], cuts)
            for k, w in enumerate(strips):
                data = ahead.result()
                if k + 1 < len(strips):
                    ahead = pool.submit(s.read, strips[k + 1], cuts)
                yield k, w, data

        yield with_data(), (write if dst is not None else None), len(strips)
        for job in pending:
            job.result()  # a failed write must fail the run before the file is renamed into place


def evaluate_prediction(
    prediction_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    out_confusion: str | os.PathLike | None = None,
    out_report: str | os.PathLike | None = None,
    *,
    threshold: float = 0.5,
    truth_field: str = "class",
    truth_layer: str | None = None,
    area_path: str | os.PathLike | None = None,
    area_layer: str | None = None,
    extent: Sequence[float] | None = None,
    is_probability: bool | None = None,
    objects: ObjectRule | None = ObjectRule(),
    sweep: bool = True,
    boundary_tolerance: int = 0,
    name: str | None = None,
    block: int = STRIP_BLOCK,
    progress: Progress | None = None,
) -> Evaluation:
    """Compare a prediction (mask or probability) with truth (raster, or polygons in any CRS) on the prediction's grid.

    A probability raster (float; or `is_probability=True`) is cut at p ≥ `threshold`, a mask is positive where > 0.
    Pixels that are nodata in either input, or outside the optional evaluation area (polygons or raster > 0), are
    left out (confusion code 0). With `objects`, landslides found/missed and false objects are counted by size
    class; with a probability input and `sweep`, scores at every threshold 0.00…0.99 are reported with the best.
    `out_report` (JSON) gets an HTML report and PNG/CSV files next to it, named after it.
    """
    progress = or_null(progress)
    _check_options(objects, boundary_tolerance)
    name = name or Path(prediction_path).stem
    with open_sources([prediction_path], truth_path, truth_field, truth_layer, area_path, area_layer,
                       extent) as s:
        grid, win = s.grid, s.window
        probability = _is_probability(grid, is_probability)
        cut = _threshold(grid, probability, threshold)
        hist = ProbabilityHistogram() if probability and sweep else None
        area_m2 = pixel_area_m2(grid, win)
        truth_objects = ObjectTally(objects, area_m2) if objects else None
        mapped_objects = ObjectTally(objects, area_m2) if objects else None
        tp = n_pred = n_pos = n_valid = 0
        seen = [np.inf, -np.inf]
        share = 100.0 if not boundary_tolerance else 70.0
        with _stream(s, [cut], block, out_confusion, "confusion", "1=TP,2=FP,3=FN,4=TN,0=nodata",
                     {k: CONFUSION_COLOURS[k] for k in (TP, FP, FN, TN)}) as (strips, write, n_strips):
            for k, w, ((predicted,), (raw,), positive, valid) in strips:
                check_canceled(progress)
                if probability:
                    _check_probability_range(raw, valid, seen, prediction_path, "PREDICTION", MASK_ADVICE,
                                             grid.nodatavals[0])
                tp += int(np.count_nonzero(predicted & positive))
                n_pred += int(np.count_nonzero(predicted))
                n_pos += int(np.count_nonzero(positive))
                n_valid += int(np.count_nonzero(valid))
                if hist is not None:
                    hist.add(raw, positive, valid)
                if truth_objects is not None:
                    last = k == n_strips - 1
                    truth_objects.add(positive, predicted, last)
                    mapped_objects.add(predicted, positive, last)
                if write is not None:
                    write(confusion_codes(predicted, positive, valid), w)
                progress.set_progress(share * (k + 1) / n_strips)
            total = Confusion.from_counts(tp, n_pred, n_pos, n_valid)
            if n_valid == 0:
                raise InputError(f"Prediction '{prediction_path}' and truth '{truth_path}' share no valid pixel"
                                 + (f" inside the evaluation area '{area_path}'." if area_path else "."))
        boundary = None
        if boundary_tolerance:
            boundary = _boundary_pass(s, cut, boundary_tolerance, block, progress, share)
    ev = Evaluation(scores(total), Path(out_confusion) if out_confusion else None, None, boundary=boundary)
    warning = _summarise(ev, truth_objects, mapped_objects, hist, n_pos, truth_path, progress)
    if out_report:
        info = dict(kind="evaluation", name=name, prediction=str(prediction_path), truth=str(truth_path),
                    evaluation_area=str(area_path) if area_path else None, pixels_evaluated=n_valid, warning=warning,
                    prediction_type="probability" if probability else "mask",
                    threshold=threshold if probability else None)
        ev.report_path, ev.files = write_evaluation_report(out_report, info, ev)
    progress.set_progress(100.0)
    return ev


def _check_options(objects: ObjectRule | None, boundary_tolerance: int) -> None:
    if objects is not None:
        objects.check()
    if boundary_tolerance < 0:
        raise InputError(f"The boundary tolerance must be 0 (off) or more pixels; got {boundary_tolerance}.")


MASK_ADVICE = ("If it is a mask or a class raster, set the prediction type (PREDICTION_TYPE) to Mask; if it is a "
               "probability in percent or 0–255, rescale it to 0–1 first.")


def confusion_codes(predicted: np.ndarray, positive: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Confusion map codes: TP 1, FP 2, FN 3, TN 4 (= 4 − 2·predicted − positive); nodata stays 0."""
    code = np.uint8(TN) - 2 * predicted.view(np.uint8) - positive.view(np.uint8)
    code *= valid.view(np.uint8)
    return code


def _summarise(ev: Evaluation, truth_objects, mapped_objects, hist, n_pos: int, truth_path,
               progress: Progress) -> str | None:
    """Object scores and the threshold sweep added to `ev`, the headline logged; a warning when there is no
    landslide in the truth to find."""
    if truth_objects is not None:
        truth_objects.finish()
        mapped_objects.finish()
        ev.objects = object_metrics(truth_objects, mapped_objects)
    if hist is not None:
        ev.sweep = threshold_sweep(hist.positive, hist.negative)
        ev.best = best_rows(ev.sweep)
    progress.log(format_metrics(ev.metrics))
    warning = None
    if n_pos == 0:  # still a count of false alarms, but no score of finding landslides
        warning = (f"the truth '{truth_path}' holds no landslide pixel where the prediction is scored, so recall, "
                   f"F1, MCC and IoU are undefined or 0 and say nothing about finding landslides; only the false "
                   f"alarms (FP) count.")
        progress.log(f"Warning: {warning}")
    if ev.objects:
        o = ev.objects
        progress.log(f"Landslides detected {o['detected']} of {o['landslides']}, false objects {o['false_objects']} "
                     f"of {o['mapped_objects']} mapped")
    if ev.best and ev.best["best_f1"]:
        b = ev.best["best_f1"]
        progress.log(f"Best threshold {b['threshold']:.2f} (F1 {b['f1']:.3f})")
    return warning


def _boundary_pass(s: _Sources, cut, tolerance: int, block: int, progress: Progress, start: float) -> dict:
    """Second pass for boundary scores: strips with a halo of tolerance + 1 rows above and below."""
    win, grid = s.window, s.grid
    tally = BoundaryTally(tolerance)
    halo = tolerance + 1
    strips = list(strip_windows(win, block))
    top, bottom = int(win.row_off), int(win.row_off + win.height)
    for k, w in enumerate(strips):
        check_canceled(progress)
        r0 = max(top, int(w.row_off) - halo)
        r1 = min(bottom, int(w.row_off + w.height) + halo)
        (predicted,), _, positive, valid = s.read(Window(w.col_off, r0, w.width, r1 - r0), [cut])
        core = slice(int(w.row_off) - r0, int(w.row_off) - r0 + int(w.height))
        tally.add(positive, predicted, valid, core)
        progress.set_progress(start + (100.0 - start) * (k + 1) / len(strips))
    return tally.result(abs(grid.transform.a))


def compare_predictions(
    prediction_a: str | os.PathLike,
    prediction_b: str | os.PathLike,
    truth_path: str | os.PathLike,
    out_map: str | os.PathLike | None = None,
    out_report: str | os.PathLike | None = None,
    *,
    names: tuple[str, str] = ("A", "B"),
    thresholds: tuple[float, float] = (0.5, 0.5),
    truth_field: str = "class",
    truth_layer: str | None = None,
    area_path: str | os.PathLike | None = None,
    area_layer: str | None = None,
    extent: Sequence[float] | None = None,
    block: int = STRIP_BLOCK,
    progress: Progress | None = None,
) -> Comparison:
    """Two predictions (e.g. single best model vs ensemble) against one truth → 8-class comparison map and scores.

    Map codes: 1 both found, 2 only A found, 3 only B found, 4 both missed, 5 both false alarm, 6 only A false
    alarm, 7 only B false alarm, 8 both correctly empty, 0 nodata. B is read on A's grid (nearest neighbour); only
    pixels valid in A, B and truth (and inside the evaluation area) count, so both get the same ground.
    """
    progress = or_null(progress)
    names = tuple(str(n) for n in names)
    if names[0] == names[1]:
        names = (f"{names[0]} (A)", f"{names[1]} (B)")
    with open_sources([prediction_a, prediction_b], truth_path, truth_field, truth_layer, area_path, area_layer,
                       extent, parameter="PREDICTION_A") as s:
        kinds = [_is_probability(src, None) for src in s.predictions]
        cuts = [_threshold(src, k, t) for src, k, t in zip(s.predictions, kinds, thresholds)]
        counts = np.zeros(BOTH_TN + 1, dtype=np.int64)
        codes = "1=both TP,2=only A TP,3=only B TP,4=both FN,5=both FP,6=only A FP,7=only B FP,8=both TN,0=nodata"
        colours = {m.value: m.color for m in COMPARISON_CLASSES}
        with _stream(s, cuts, block, out_map, "comparison", codes, colours) as (strips, write, n_strips):
            seen = [[np.inf, -np.inf], [np.inf, -np.inf]]
            for k, w, ((a, b), raws, positive, valid) in strips:
                check_canceled(progress)
                for raw, kind, path, side, lo_hi, src in zip(raws, kinds, (prediction_a, prediction_b), "AB", seen,
                                                             s.predictions):
                    if kind:
                        _check_probability_range(raw, valid, lo_hi, path, f"PREDICTION_{side}",
                                                 "If it is a mask or a class raster, store it as integers (1 = "
                                                 "landslide); if it is a probability in percent or 0–255, rescale "
                                                 "it to 0–1 first.", src.nodatavals[0])
                code = np.uint8(BOTH_TN) - 4 * positive.view(np.uint8) - 2 * a.view(np.uint8) - b.view(np.uint8)
                code *= valid.view(np.uint8)
                counts += np.bincount(code.ravel(), minlength=BOTH_TN + 1)
                if write is not None:
                    write(code, w)
                progress.set_progress(95.0 * (k + 1) / n_strips)
            if counts[1:].sum() == 0:
                raise InputError(f"Predictions '{prediction_a}', '{prediction_b}' and truth '{truth_path}' share no "
                                 f"valid pixel.")
    c = counts
    conf_a = Confusion(tp=int(c[BOTH_TP] + c[ONLY_A_TP]), fn=int(c[ONLY_B_TP] + c[BOTH_FN]),
                       fp=int(c[BOTH_FP] + c[ONLY_A_FP]), tn=int(c[ONLY_B_FP] + c[BOTH_TN]))
    conf_b = Confusion(tp=int(c[BOTH_TP] + c[ONLY_B_TP]), fn=int(c[ONLY_A_TP] + c[BOTH_FN]),
                       fp=int(c[BOTH_FP] + c[ONLY_B_FP]), tn=int(c[ONLY_A_FP] + c[BOTH_TN]))
    labels = {m.value: m.label.format(a=names[0], b=names[1]) for m in COMPARISON_CLASSES}
    result = Comparison(names, (scores(conf_a), scores(conf_b)), {labels[v]: int(c[v]) for v in labels},
                        Path(out_map) if out_map else None, None)
    for n, m in zip(names, result.metrics):
        progress.log(f"{n}: {format_metrics(m)}")
    if out_report:
        info = {"kind": "comparison", "truth": str(truth_path),
                "evaluation_area": str(area_path) if area_path else None,
                "predictions": [{"name": n, "path": str(p), "prediction_type": "probability" if k else "mask",
                                 "threshold": t if k else None}
                                for n, p, k, t in zip(names, (prediction_a, prediction_b), kinds, thresholds)]}
        result.report_path, result.files = write_comparison_report(out_report, info, result)
    progress.set_progress(100.0)
    return result
