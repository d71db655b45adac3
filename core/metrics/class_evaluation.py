"""Evaluation of a multi-class map (class values, e.g. bedrock / wetland / ravine) against class truth, streamed over
strips: confusion matrix, per-class scores, a confusion map of one chosen class, report with a heat map."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import raster
from ...common.errors import InputError
from ...common.progress import Progress, check_canceled, or_null
from .classes import IGNORE, ClassConfusion, ClassInfo, class_infos, class_scores, format_class_metrics, \
    format_class_table
from .codes import CONFUSION_COLOURS, FN, FP, TN, TP
from .scores import Confusion, scores

CLASS_TABLE_TAG = "LANDSLIDE_MAPPER_CLASSES"  # JSON [{value, name, color}] on class maps we write


@dataclass
class ClassEvaluation:
    metrics: dict  # see `class_scores`
    confusion_path: Path | None  # confusion map of the chosen class
    report_path: Path | None
    chosen: dict | None = None  # binary scores of the chosen class
    files: dict = field(default_factory=dict)


def read_class_table(path) -> list[ClassInfo] | None:
    """The class table of a class map: our JSON tag, else GDAL category names (with the colour table), else None."""
    from osgeo import gdal

    with raster.open_raster(path) as src:
        tag = src.tags().get(CLASS_TABLE_TAG)
        if tag:
            try:
                return class_infos(json.loads(tag))
            except (ValueError, KeyError, TypeError):
                pass
    ds = gdal.Open(str(path))
    ds.GetFileList()  # loads the .aux.xml (GDAL 3.6's GeoTIFF band reads category names only after that)
    band = ds.GetRasterBand(1)
    names = band.GetCategoryNames() or []
    table = band.GetColorTable()
    out = []
    for v, n in enumerate(names):
        if n:
            color = "#808080"
            if table is not None and v < table.GetCount():
                color = "#" + "".join(f"{c:02x}" for c in table.GetColorEntry(v)[:3])
            out.append(ClassInfo(v, n, color))
    return out or None


def _pick_class(classes: Sequence[ClassInfo], chosen) -> ClassInfo | None:
    if chosen is None or str(chosen).strip() == "":
        return None
    token = str(chosen).strip()
    for c in classes:
        if c.name.lower() == token.lower() or (token.lstrip("-").isdigit() and int(token) == c.value):
            return c
    listed = ", ".join(f"{c.value} '{c.name}'" for c in classes)
    raise InputError(f"The class map has no class '{token}' to draw a confusion map of (CONFUSION_CLASS); its classes "
                     f"are: {listed}.")


def _truth_lut(truth, classes: Sequence[ClassInfo], truth_path) -> np.ndarray | None:
    """For polygons with a text class field: truth codes (1…n alphabetical) → class map values, matched by name."""
    if truth.raster_path is not None or not truth.classes:
        return None
    if all(c.name == str(c.value) for c in truth.classes):
        return None  # numeric field: values are the classes
    by_name = {c.name.lower(): c.value for c in classes}
    lut = np.arange(256, dtype=np.uint8)
    for c in truth.classes:
        if c.name.lower() not in by_name:
            listed = ", ".join(f"'{k.name}'" for k in classes)
            raise InputError(f"Truth '{truth_path}' (TRUTH) has class '{c.name}', which the class map does not know "
                             f"(its classes are {listed}). Name the truth classes as the model's, then run again.")
        lut[c.value] = by_name[c.name.lower()]
    return lut


CONFUSION_CODES = "1=TP,2=FP,3=FN,4=TN,0=nodata"


def _table_and_chosen(prediction_path, classes, confusion_class, confusion_map: bool, progress: Progress):
    """The class table (with background) and the class a confusion map is drawn for (None: no map)."""
    table = class_infos(classes) if classes else read_class_table(prediction_path)
    if not table:
        raise InputError(f"Class map '{prediction_path}' (PREDICTION) carries no class table (no category names); "
                         f"evaluate it as a mask, or write it with the predict algorithm of a multi-class package.")
    if all(c.value != 0 for c in table):
        table = [ClassInfo(0, "background", "#000000"), *table]
    chosen = _pick_class(table, confusion_class)
    if confusion_map and chosen is None:  # the first class that is not background
        chosen = next((c for c in table if c.value != 0), table[0])
        progress.log(f"Confusion map drawn for class '{chosen.name}' (CONFUSION_CLASS chooses another).")
    return table, chosen


def _read_classes(s, w, prediction_path) -> tuple[np.ndarray, np.ndarray]:
    """Class values of one strip and where they count (inside the evaluation area); whole values only."""
    from ..labels import rasterize_labels

    data, valid = raster.read_valid(s.predictions[0], 1, w)
    if data.dtype.kind == "f":
        bad = valid & (data != np.round(data))
        if bad.any():
            raise InputError(f"Class map '{prediction_path}' (PREDICTION) holds {data[bad].flat[0]}; a class map "
                             f"holds whole class values. For a probability use the binary evaluation "
                             f"(PREDICTION_TYPE Probability).")
    if s.area is not None:
        valid &= rasterize_labels(s.area, s.grid, w) == 1
    return data, valid


def evaluate_class_map(
    prediction_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    out_confusion: str | os.PathLike | None = None,
    out_report: str | os.PathLike | None = None,
    *,
    classes: Sequence | None = None,
    confusion_class=None,
    truth_field: str = "class",
    truth_layer: str | None = None,
    area_path: str | os.PathLike | None = None,
    area_layer: str | None = None,
    extent: Sequence[float] | None = None,
    name: str | None = None,
    block: int | None = None,
    progress: Progress | None = None,
) -> ClassEvaluation:
    """Score a class map (integer class values) against class truth (raster of class values, or polygons with a
    class field: numbers are class values, texts are matched to class names) on the class map's grid.

    The class table comes from `classes`, else from the class map (our tag or GDAL category names). Truth 255,
    nodata in either input and pixels outside the evaluation area are left out. `confusion_class` (value or name)
    gets a TP/FP/FN/TN confusion map in `out_confusion`, as the binary evaluation draws it.
    """
    from ..labels import LabelReader
    from .evaluate import STRIP_BLOCK, code_raster, confusion_codes, open_sources, strip_windows

    progress = or_null(progress)
    name = name or Path(prediction_path).stem
    table, chosen = _table_and_chosen(prediction_path, classes, confusion_class, bool(out_confusion), progress)
    confusion = ClassConfusion([c.value for c in table])
    binary = Confusion()
    with open_sources([prediction_path], truth_path, truth_field, truth_layer, area_path, area_layer,
                       extent) as s:
        lut = _truth_lut(s.truth, table, truth_path)
        reader = LabelReader(s.truth, s.grid)
        strips = list(strip_windows(s.window, block or STRIP_BLOCK))
        try:
            with code_raster(out_confusion, s.grid, s.window, f"confusion of {chosen.name}" if chosen else "",
                             CONFUSION_CODES, {k: CONFUSION_COLOURS[k] for k in (TP, FP, FN, TN)}) as dst:
                for k, w in enumerate(strips):
                    check_canceled(progress)
                    truth = reader(w)
                    if lut is not None:
                        truth = lut[truth]
                    data, valid = _read_classes(s, w, prediction_path)
                    valid &= truth != IGNORE
                    predicted = np.where(valid, data, 0).astype(np.uint8)
                    try:
                        confusion.add(truth, predicted, valid)
                    except ValueError as exc:
                        raise InputError(f"Evaluating '{prediction_path}' against '{truth_path}': {exc}. Give the "
                                         f"truth the class values of the model's class table.") from None
                    if chosen is not None:
                        p = (predicted == chosen.value) & valid
                        t = (truth == chosen.value) & valid
                        binary += Confusion.from_arrays(p, t, valid)
                        if dst is not None:
                            dst.write(confusion_codes(p, t, valid)[None],
                                      window=type(w)(0, w.row_off - s.window.row_off, w.width, w.height))
                    progress.set_progress(90.0 * (k + 1) / len(strips))
                if confusion.matrix.sum() == 0:
                    raise InputError(f"Class map '{prediction_path}' and truth '{truth_path}' share no valid pixel.")
        finally:
            reader.close()
    metrics = class_scores(confusion, table)
    ev = ClassEvaluation(metrics, Path(out_confusion) if out_confusion else None, None,
                         scores(binary) if chosen is not None else None)
    progress.log(format_class_metrics(metrics))
    progress.log(format_class_table(metrics))
    if out_report:
        info = {"kind": "class evaluation", "name": name, "prediction": str(prediction_path),
                "truth": str(truth_path), "evaluation_area": str(area_path) if area_path else None,
                "prediction_type": "class map", "confusion_class": chosen.name if chosen else None,
                "chosen_class_metrics": ev.chosen}
        from .reports import write_class_report
        ev.report_path, ev.files = write_class_report(out_report, info, metrics, ev.confusion_path,
                                                      chosen.name if chosen else None)
    progress.set_progress(100.0)
    return ev
