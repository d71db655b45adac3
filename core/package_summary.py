"""A model package summarised for people: members, bands with their meaning, tile size, threshold, validation."""
from __future__ import annotations

from ..models.package import PIXEL_BASELINE, ModelPackage
from .stack import describe_band


def describe(package: ModelPackage) -> str:
    """A human summary of a package (model card)."""
    m = package.manifest
    lines = [f"Model package: {package.path.name}"]
    for i, member in enumerate(m["members"], start=1):
        if member.get("kind") == PIXEL_BASELINE:
            what = f"{member['architecture']} pixel classifier, {member.get('n_trees', '?')} tree(s)"
        else:
            what = f"{member['architecture']} / encoder {member.get('encoder')}"
            if member.get("loss"):
                what += f", loss {member['loss']}, lr {member.get('learning_rate')}"
        score = member.get("validation_f1")
        lines.append(f"Member {i}: {what}" + (f", validation F1 {score:.3f}" if score is not None else ""))
    if len(m["members"]) > 1:
        lines.append(f"Ensemble: pixel-wise weighted mean of {len(m['members'])} members' probabilities")
    lines.append("Input bands:")
    lines += [f"  {i}. {b} — {describe_band(b)}" for i, b in enumerate(m["input_bands"], start=1)]
    if m.get("pixel_size"):
        lines.append(f"Training pixel size: {m['pixel_size'][0]:g} × {m['pixel_size'][1]:g}")
    if package.is_multiclass:
        lines.append(f"Task: multi-class ({len(m['classes'])} classes; the class map holds the most probable class, "
                     f"best epoch by macro F1)")
        per_class = {int(r["value"]): r for r in m.get("validation_classes") or [] if "value" in r}
        lines.append("Classes (value, name, colour, validation F1):")
        for c in m["classes"]:
            f1 = per_class.get(int(c["value"]), {}).get("f1")
            lines.append(f"  {c['value']}: {c['name']} {c.get('color', '')}"
                         + (f", F1 {f1:.3f}" if isinstance(f1, (int, float)) else ""))
        lines.append(f"Tile size: {m['tile_size']} px")
    else:
        lines.append(f"Tile size: {m['tile_size']} px, decision threshold {m['threshold']:.2f} (chosen on "
                     f"validation)")
    vm = m.get("validation_metrics") or {}
    if vm:
        lines.append("Validation: " + ", ".join(f"{k} {v:.3f}" for k, v in vm.items() if isinstance(v, float)))
    tr = m.get("training") or {}
    if tr.get("best_epoch"):
        lines.append(f"Training: best epoch {tr['best_epoch']} of {len(tr.get('history', []))}, "
                     f"{tr.get('seconds', 0):.0f} s")
    prov = m.get("provenance") or {}
    if prov.get("created"):
        lines.append(f"Created {prov['created']} from {prov.get('chips', 'unknown chips')}")
    return "\n".join(lines)
