"""The preview PNG of a chip export: a sample of chips with their labels outlined."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..labels import IGNORE, LabelClass, hex_rgb


def _preview_bands(names: Sequence[str]) -> list[int]:
    """Red, green, blue band indexes: Sentinel-2 true colour when the stack has it, else the first three bands."""
    for wanted in (("B04", "B03", "B02"), ("post_B04", "post_B03", "post_B02")):
        if all(w in names for w in wanted):
            return [names.index(w) for w in wanted]
    return [0, 1, 2] if len(names) >= 3 else [0] * 3


def write_preview(path: Path, chips: Sequence[tuple], band_stats: Sequence[dict], lut: np.ndarray,
                  classes: Sequence[LabelClass], cell: int = 160) -> Path:
    """PNG mosaic of a few chips (first three bands stretched 2–98 %) with their labels drawn over them.

    Landslide classes are filled in their colour and outlined, other classes tinted, unknown/nodata grey. Drawn
    with Pillow: importing matplotlib would take longer than cutting thousands of chips.
    """
    from PIL import Image, ImageDraw

    chips = sorted(chips, key=lambda p: -p[3])
    cols = min(4, len(chips))
    rows_n = math.ceil(len(chips) / cols)
    gap, title = 6, 22
    mosaic = np.ones((title + rows_n * (cell + gap), cols * (cell + gap), 3), dtype=np.float32)
    colours = {c.value: np.array(hex_rgb(c.color), dtype=np.float32) / 255 for c in classes}
    bands = _preview_bands([s["name"] for s in band_stats])
    for k, (image, codes, split, _) in enumerate(chips):
        t = codes.shape[0]
        pick = np.arange(cell) * t // cell  # nearest-neighbour zoom to the cell size
        rgb = np.empty((t, t, 3), dtype=np.float32)
        for j, b in enumerate(bands):
            lo, hi = band_stats[b]["p2"], band_stats[b]["p98"]
            rgb[..., j] = np.clip((image[b] - lo) / ((hi - lo) or 1.0), 0, 1)
        rgb[~np.isfinite(rgb)] = 0
        for value, colour in colours.items():
            mask = codes == value
            alpha = 0.55 if lut[value] == 1 else 0.3
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
        rgb[codes == IGNORE] = 0.5 * rgb[codes == IGNORE] + 0.25
        landslide = lut[codes] == 1
        edge = landslide & ~(np.roll(landslide, 1, 0) & np.roll(landslide, -1, 0) & np.roll(landslide, 1, 1)
                             & np.roll(landslide, -1, 1))
        rgb[edge] = (1.0, 1.0, 0.2)
        r, c = divmod(k, cols)
        top = title + r * (cell + gap)
        mosaic[top:top + cell, c * (cell + gap):c * (cell + gap) + cell] = rgb[pick][:, pick]
    picture = Image.fromarray((mosaic * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    font = _preview_font()
    draw.text((4, 5), "Chips and labels: landslide classes coloured, yellow outline; other classes tinted; "
                      "grey = unknown / nodata", fill=(0, 0, 0), font=font)
    for k, (_, codes, split, _) in enumerate(chips):
        r, c = divmod(k, cols)
        x, y = c * (cell + gap) + 3, title + r * (cell + gap) + 3
        text = f"{split}  {float((lut[codes] == 1).mean()):.1%}"
        box = draw.textbbox((x, y), text, font=font)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
    picture.save(path, format="PNG", compress_level=1)  # zlib's default level costs more than the drawing
    return path


def _preview_font():
    """A small sans-serif TrueType font where the system has one, else Pillow's built-in bitmap font."""
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "arial.ttf",
                 "Helvetica.ttc"):
        try:
            return ImageFont.truetype(name, 11)
        except OSError:
            continue
    return ImageFont.load_default()
