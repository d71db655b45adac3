"""Readable reports: JSON, HTML and CSV beside the metrics."""
from __future__ import annotations

import csv
import html
import json
import math
import os
from pathlib import Path
from typing import Sequence

from ...common.outputs import atomic_output
from .codes import COMPARISON_CLASSES
from .plots import (
    plot_comparison_map,
    plot_confusion_map,
    plot_performance_diagram,
    plot_threshold_sweep,
)
from .results import Comparison, Evaluation
from .scores import METRIC_HELP

SWEEP_COLUMNS = ("threshold", "precision", "recall", "f1", "mcc", "iou", "bias", "tp", "fp", "fn", "tn")


def write_sweep_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(SWEEP_COLUMNS)
            for r in rows:
                writer.writerow([_csv_value(r[c]) for c in SWEEP_COLUMNS])
    return Path(path)


def _csv_value(v):
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


SIDE_SUFFIXES = (".html", "_confusion.png", "_performance.png", "_sweep.csv", "_sweep.png", "_comparison.png",
                 "_matrix.png", "_classes.csv")


def _sibling(report: Path, suffix: str) -> Path:
    return report.with_name(report.stem + suffix)


def side_files(report: str | os.PathLike) -> list[Path]:
    """Every file a report may write beside itself (HTML page, plots, sweep table)."""
    return [_sibling(Path(report), s) for s in SIDE_SUFFIXES]


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}img{max-width:100%;"
        "border:1px solid #ddd;margin:0.5em 0}.note{color:#666;font-size:90%}.sw{display:inline-block;width:1em;"
        "height:1em;vertical-align:middle;margin-right:4px;border:1px solid #999}")


def _html_page(title: str, parts: Sequence[str]) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>")


def _metric_rows(metrics_list: Sequence[dict]) -> list[list[str]]:
    return [[f"{key.upper() if key in ('f1', 'mcc', 'iou') else key.capitalize()}"
             f'<br><span class="note">{html.escape(help_)}</span>', *[_fmt(m[key]) for m in metrics_list]]
            for key, help_ in METRIC_HELP.items()]


def _write_text(path: Path, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _inputs_html(info: dict) -> str:
    rows = [[html.escape(k.replace("_", " ")), html.escape(str(v))] for k, v in info.items()
            if v is not None and not isinstance(v, (list, dict))]
    return "<h2>Inputs</h2>" + _table(["Input", "Value"], rows)


def _json_safe(obj):
    """JSON without NaN/Infinity (not valid JSON): undefined values become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_evaluation_report(out_report, info: dict, ev: Evaluation) -> tuple[Path, dict]:
    """JSON report plus an HTML page, PNG plots and the sweep CSV next to it (named after the JSON file)."""
    report = Path(out_report)
    files: dict[str, Path] = {}
    name = info.get("name") or "prediction"
    if ev.confusion_path is not None:
        files["confusion_png"] = plot_confusion_map(ev.confusion_path, _sibling(report, "_confusion.png"),
                                                    ev.metrics, title=f"{name}: landslide map check")
    files["performance_diagram"] = plot_performance_diagram([(name, ev.metrics)],
                                                            _sibling(report, "_performance.png"))
    if ev.sweep:
        files["sweep_csv"] = write_sweep_csv(ev.sweep, _sibling(report, "_sweep.csv"))
        files["sweep_plot"] = plot_threshold_sweep(ev.sweep, _sibling(report, "_sweep.png"), info.get("threshold"),
                                                   title=f"{name}: scores by threshold")
    files["html"] = _sibling(report, ".html")
    _write_text(files["html"], _evaluation_html(info, ev, files))
    body = {**info, "metrics": ev.metrics, "objects": ev.objects, "boundary": ev.boundary,
            "threshold_sweep": ({**ev.best, "rows": len(ev.sweep)} if ev.sweep else None),
            "files": {k: p.name for k, p in files.items()}}
    _write_text(report, json.dumps(_json_safe(body), indent=2, ensure_ascii=False))
    return report, files


def _evaluation_html(info: dict, ev: Evaluation, files: dict) -> str:
    m = ev.metrics
    parts = [_inputs_html(info), "<h2>Pixel scores</h2>", _table(["Score", "Value"], _metric_rows([m])),
             "<h3>Confusion matrix (pixels)</h3>",
             _table(["", "Truth: landslide", "Truth: no landslide"],
                    [["Mapped as landslide", f"TP {_fmt(m['tp'])}", f"FP {_fmt(m['fp'])}"],
                     ["Not mapped", f"FN {_fmt(m['fn'])}", f"TN {_fmt(m['tn'])}"]])]
    if "confusion_png" in files:
        parts.append(f'<img src="{html.escape(files["confusion_png"].name)}" alt="confusion map">')
    if ev.objects:
        o = ev.objects
        rule = ("at least one of its pixels" if o["rule"]["min_overlap"] == 0
                else f"at least {o['rule']['min_overlap']:.0%} of its pixels")
        parts += [f"<h2>Landslides as objects</h2><p>A landslide (connected truth pixels, {o['rule']['connectivity']}"
                  f"-connected) counts as detected when the map covers {rule}; a mapped object is false when it "
                  f"does not reach real landslides by the same rule.</p>",
                  _table(["", "Value"], [["Landslides", _fmt(o["landslides"])], ["Detected", _fmt(o["detected"])],
                                         ["Missed", _fmt(o["missed"])], ["Mapped objects", _fmt(o["mapped_objects"])],
                                         ["False objects", _fmt(o["false_objects"])],
                                         ["Object recall", _fmt(o["object_recall"])],
                                         ["Object precision", _fmt(o["object_precision"])],
                                         ["Object F1", _fmt(o["object_f1"])]]),
                  _table(["Size class", "Landslides", "Detected", "Missed", "Recall", "Mapped objects",
                          "False objects"],
                         [[html.escape(c["size_class"]), _fmt(c["landslides"]), _fmt(c["detected"]),
                           _fmt(c["missed"]), _fmt(c["recall"]), _fmt(c["mapped_objects"]), _fmt(c["false_objects"])]
                          for c in o["size_classes"]])]
    if ev.boundary:
        b = ev.boundary
        parts += [f"<h2>Boundaries (within {b['tolerance_px']} px)</h2>",
                  _table(["", "Value"], [["Boundary precision", _fmt(b["boundary_precision"])],
                                         ["Boundary recall", _fmt(b["boundary_recall"])],
                                         ["Boundary F1", _fmt(b["boundary_f1"])]])]
    parts.append('<h2>Performance diagram</h2><p class="note">Top right is best; dashed lines are frequency bias, '
                 "grey contours the critical success index.</p>"
                 f'<img src="{html.escape(files["performance_diagram"].name)}" alt="performance diagram">')
    if ev.sweep:
        rows = [[f"best {key[5:].upper()}", _fmt(r["threshold"], 2), _fmt(r["precision"]), _fmt(r["recall"]),
                 _fmt(r["f1"]), _fmt(r["mcc"])] for key, r in ev.best.items() if r is not None]
        parts += ["<h2>Threshold sweep</h2>",
                  _table(["", "Threshold", "Precision", "Recall", "F1", "MCC"], rows),
                  f'<p><a href="{html.escape(files["sweep_csv"].name)}">All thresholds (CSV)</a></p>',
                  f'<img src="{html.escape(files["sweep_plot"].name)}" alt="scores by threshold">']
    return _html_page(f"Landslide map check: {info.get('name')}", parts)


def write_comparison_report(out_report, info: dict, result: Comparison) -> tuple[Path, dict]:
    """JSON report plus an HTML page with both models' scores, the comparison quick-look and performance diagram."""
    report = Path(out_report)
    files: dict[str, Path] = {}
    if result.map_path is not None:
        files["comparison_png"] = plot_comparison_map(result.map_path, _sibling(report, "_comparison.png"),
                                                      result.names,
                                                      title=f"{result.names[0]} (A) vs {result.names[1]} (B)")
    files["performance_diagram"] = plot_performance_diagram(list(zip(result.names, result.metrics)),
                                                            _sibling(report, "_performance.png"))
    files["html"] = _sibling(report, ".html")
    colours = {m.label.format(a=result.names[0], b=result.names[1]): m.color for m in COMPARISON_CLASSES}
    parts = [_inputs_html(info),
             _table(["Map", "File", "Type", "Threshold"],
                    [[html.escape(p["name"]), html.escape(p["path"]), p["prediction_type"], _fmt(p["threshold"], 2)]
                     for p in info["predictions"]]),
             "<h2>Pixel scores on the pixels both maps cover</h2>",
             _table(["Score", *map(html.escape, result.names)], _metric_rows(result.metrics)),
             "<h2>Where the maps agree and differ (pixels)</h2>",
             _table(["Class", "Pixels"], [[f'<span class="sw" style="background:{colours[k]}"></span>'
                                           f"{html.escape(k)}", _fmt(v)] for k, v in result.counts.items()])]
    if "comparison_png" in files:
        parts.append(f'<img src="{html.escape(files["comparison_png"].name)}" alt="comparison map">')
    parts.append(f'<h2>Performance diagram</h2><img src="{html.escape(files["performance_diagram"].name)}" '
                 f'alt="performance diagram">')
    _write_text(files["html"], _html_page(f"Comparison: {result.names[0]} vs {result.names[1]}", parts))
    body = {**info, "metrics": dict(zip(result.names, result.metrics)), "pixels_by_class": result.counts,
            "files": {k: p.name for k, p in files.items()}}
    _write_text(report, json.dumps(_json_safe(body), indent=2, ensure_ascii=False))
    return report, files


CLASS_CSV_COLUMNS = ("value", "name", "precision", "recall", "f1", "iou", "support", "predicted")


def class_table_html(s: dict) -> str:
    """The per-class table (with colour swatches) and the macro and weighted rows, as HTML."""
    rows = [[f'<span class="sw" style="background:{html.escape(r["color"])}"></span>{html.escape(r["name"])} '
             f'({r["value"]})', *[_fmt(r[k]) for k in ("precision", "recall", "f1", "iou")], _fmt(r["support"]),
             _fmt(r["predicted"])] for r in s["classes"]]
    for kind in ("macro", "weighted"):
        rows.append([f"<b>{kind} average</b>", *[_fmt(s[f"{kind}_{k}"]) for k in ("precision", "recall", "f1", "iou")],
                     _fmt(s["pixels"]), ""])
    return (_table(["Class", "Precision", "Recall", "F1", "IoU", "Pixels in truth", "Pixels mapped"], rows)
            + _table(["Score", "Value"], [["Accuracy", _fmt(s["accuracy"])],
                                          ["Balanced accuracy (mean recall)", _fmt(s["balanced_accuracy"])],
                                          ["Cohen's kappa", _fmt(s["kappa"])]]))


def write_class_report(out_report, info: dict, s: dict, confusion_path=None, chosen: str | None = None
                       ) -> tuple[Path, dict]:
    """JSON report plus an HTML page, the confusion-matrix heat map and the per-class CSV next to it."""
    from .plots import plot_class_confusion

    report = Path(out_report)
    name = info.get("name") or "class map"
    names = [r["name"] for r in s["classes"]]
    files: dict[str, Path] = {"matrix_png": plot_class_confusion(s["confusion_matrix"], names,
                                                                 _sibling(report, "_matrix.png"),
                                                                 title=f"{name}: confusion matrix")}
    if confusion_path is not None:
        files["confusion_png"] = plot_confusion_map(confusion_path, _sibling(report, "_confusion.png"),
                                                    info.get("chosen_class_metrics") or {},
                                                    title=f"{name}: {chosen} map check")
    files["classes_csv"] = _sibling(report, "_classes.csv")
    with atomic_output(files["classes_csv"]) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CLASS_CSV_COLUMNS)
            for r in s["classes"]:
                writer.writerow([_csv_value(r[c]) for c in CLASS_CSV_COLUMNS])
    matrix_rows = [[html.escape(r["name"]), *[_fmt(int(v)) for v in row]]
                   for r, row in zip(s["classes"], s["confusion_matrix"])]
    parts = [_inputs_html(info), "<h2>Scores per class</h2>", class_table_html(s),
             "<h2>Confusion matrix (pixels; rows truth, columns mapped)</h2>",
             _table(["Truth \\ mapped", *names], matrix_rows),
             f'<img src="{html.escape(files["matrix_png"].name)}" alt="confusion matrix">']
    if "confusion_png" in files:
        parts += [f"<h2>Map check of class {html.escape(str(chosen))}</h2>",
                  f'<img src="{html.escape(files["confusion_png"].name)}" alt="confusion map">']
    files["html"] = _sibling(report, ".html")
    _write_text(files["html"], _html_page(f"Class map check: {name}", parts))
    body = {**info, "metrics": s, "files": {k: p.name for k, p in files.items()}}
    _write_text(report, json.dumps(_json_safe(body), indent=2, ensure_ascii=False))
    return report, files
