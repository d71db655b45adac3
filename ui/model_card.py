"""The model card: what a model package was trained on and how good it was, as HTML for the model dock."""
from __future__ import annotations

from html import escape
from pathlib import Path

from ..core.stack import describe_band

METRIC_NAMES = {"precision": "Precision", "recall": "Recall", "f1": "F1", "mcc": "MCC", "iou": "IoU"}


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else escape(
        str(value))


def _crs_name(wkt: str | None) -> str:
    if not wkt:
        return ""
    try:
        from qgis.core import QgsCoordinateReferenceSystem

        crs = QgsCoordinateReferenceSystem.fromWkt(wkt)
        return crs.authid() or crs.description()
    except ImportError:  # only outside QGIS
        return ""


def _member(member: dict) -> str:
    what = escape(str(member.get("architecture", "?")))
    if member.get("encoder"):
        what += f" / {escape(str(member['encoder']))}"
    extras = [f"loss {escape(str(member['loss']))}" if member.get("loss") else "",
              f"lr {member['learning_rate']:g}" if isinstance(member.get("learning_rate"), (int, float)) else "",
              f"validation F1 {member['validation_f1']:.3f}" if isinstance(member.get("validation_f1"), float) else "",
              f"weight {member['weight']:g}" if isinstance(member.get("weight"), (int, float)) else ""]
    extras = [e for e in extras if e]
    return what + (f" ({', '.join(extras)})" if extras else "")


def model_card_html(manifest: dict, path: str | Path) -> str:
    """Architecture, input bands with their meaning, training grid, validation scores, threshold, members."""
    m = manifest
    members = m.get("members") or []
    arch = m.get("architecture") or (members[0].get("architecture") if members else "?")
    title = f"{escape(Path(path).name)}"
    rows = [("Network", escape(str(arch)) + (f" / encoder {escape(str(m['encoder']))}"
                                              if m.get("encoder") and arch != "ensemble" else ""))]
    if len(members) > 1:
        rows.append(("Ensemble", f"mean of {len(members)} members' probabilities"))
    pixel = m.get("pixel_size")
    crs = _crs_name(m.get("crs"))
    if pixel:
        rows.append(("Training data", f"pixel size {pixel[0]:g} × {pixel[1]:g}" + (f", {escape(crs)}" if crs else "")))
    training = m.get("training") or {}
    provenance = m.get("provenance") or {}
    area = provenance.get("area") or provenance.get("region") or training.get("area")
    if area:
        rows.append(("Training area", escape(str(area))))
    rows.append(("Tile", f"{m.get('tile_size')} px" + (f", overlap {m['overlap']} px" if m.get("overlap") else "")))
    multiclass = m.get("task") == "multiclass_segmentation"
    if multiclass:
        rows.append(("Task", f"multi-class: {len(m.get('classes') or [])} classes, the class map holds the most "
                             f"probable (best epoch by macro F1)"))
    else:
        rows.append(("Threshold", f"{float(m['threshold']):.2f} (chosen on validation data)"))
    metrics = m.get("validation_metrics") or {}
    if multiclass:
        metrics = {{"macro_f1": "f1", "macro_iou": "iou"}.get(k, k): v for k, v in metrics.items()
                   if k in ("macro_f1", "macro_iou", "precision", "recall")}
    scores = [f"{METRIC_NAMES.get(k, k)} {_fmt(v)}" for k, v in metrics.items()
              if isinstance(v, float) and k in METRIC_NAMES]
    if scores:
        rows.append(("Validation (mean of classes)" if multiclass else "Validation", ", ".join(scores)))
    if training.get("best_epoch"):
        rows.append(("Training", f"best epoch {training['best_epoch']} of {len(training.get('history') or [])}"))
    if provenance.get("created"):
        rows.append(("Created", escape(str(provenance["created"]))))
    bands = "".join(f"<tr><td><b>{i}. {escape(b)}</b></td><td>{escape(describe_band(b))}</td></tr>"
                    for i, b in enumerate(m["input_bands"], start=1))
    member_rows = "".join(f"<li>{_member(x)}</li>" for x in members) if len(members) > 1 else ""
    classes = class_table_html(m) if multiclass else ""
    table = "".join(f"<tr><td style='color:#555'>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return (f"<h3 style='margin:0'>{title}</h3>"
            f"<table cellspacing='0' cellpadding='2'>{table}</table>"
            + classes
            + "<p style='margin:4px 0 0 0'><b>Input bands</b></p>"
            + f"<table cellspacing='0' cellpadding='1'>{bands}</table>"
            + (f"<p style='margin:4px 0 0 0'><b>Ensemble members</b></p><ul style='margin:0'>{member_rows}</ul>"
               if member_rows else ""))



def class_table_html(manifest: dict) -> str:
    """The class table of a multi-class package: colour swatch, value, name and the class's validation F1/IoU."""
    per_class = {int(r["value"]): r for r in manifest.get("validation_classes") or [] if "value" in r}
    rows = []
    for c in manifest.get("classes") or []:
        score = per_class.get(int(c["value"]), {})
        colour = escape(str(c.get("color") or "#808080")[:7])
        rows.append(f"<tr><td><span style='background:{colour};color:{colour}'>&nbsp;&nbsp;&nbsp;</span></td>"
                    f"<td>{int(c['value'])}</td><td><b>{escape(str(c.get('name', c['value'])))}</b></td>"
                    f"<td>{_fmt(score['f1']) if isinstance(score.get('f1'), (int, float)) else ''}</td>"
                    f"<td>{_fmt(score['iou']) if isinstance(score.get('iou'), (int, float)) else ''}</td></tr>")
    return ("<p style='margin:4px 0 0 0'><b>Classes</b></p><table cellspacing='0' cellpadding='1'>"
            "<tr><td></td><td style='color:#555'>value</td><td style='color:#555'>name</td>"
            "<td style='color:#555'>val. F1</td><td style='color:#555'>val. IoU</td></tr>" + "".join(rows) + "</table>")
