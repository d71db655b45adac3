"""Codes and colours of the confusion and comparison maps (shared by the maps, plots and styles)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MapClass:
    """One value of a paletted map: its colour (#rrggbb) and legend label."""

    value: int
    color: str
    label: str


# Confusion map codes (paletted style ui/styles/confusion.qml).
NODATA, TP, FP, FN, TN = 0, 1, 2, 3, 4
CONFUSION_NAMES = {TP: "true positive", FP: "false positive", FN: "false negative", TN: "true negative"}
# As ui/styles/confusion.qml, TN opaque light grey (the map style draws it translucent), for PNGs and colour tables.
CONFUSION_COLOURS = {TP: "#1a9641", FP: "#e31a1c", FN: "#2c7bb6", TN: "#e6e6e6", NODATA: "#ffffff"}

# Single-vs-ensemble comparison map. The 7 coloured classes match ui/styles/comparison.qml (scripts/make_styles.py,
# with A and B for the names); 8 = both right where there is no landslide and 0 = nodata are left transparent.
# code = 8 − (4·truth + 2·A + B), so the code itself says which of A and B was right.
BOTH_TP, ONLY_A_TP, ONLY_B_TP, BOTH_FN, BOTH_FP, ONLY_A_FP, ONLY_B_FP, BOTH_TN = range(1, 9)
COMPARISON_CLASSES = (
    MapClass(BOTH_TP, "#1a9641", "Both detect the landslide"),
    MapClass(ONLY_A_TP, "#80cdc1", "Only {a} detects ({b} misses)"),
    MapClass(ONLY_B_TP, "#dfc27d", "Only {b} detects ({a} misses)"),
    MapClass(BOTH_FN, "#2c7bb6", "Both miss the landslide"),
    MapClass(BOTH_FP, "#e31a1c", "Both give a false alarm"),
    MapClass(ONLY_A_FP, "#f781bf", "False alarm of {a} only"),
    MapClass(ONLY_B_FP, "#984ea3", "False alarm of {b} only"),
    MapClass(BOTH_TN, "#e6e6e6", "Both right: no landslide"),  # light grey in quick-looks only
)
