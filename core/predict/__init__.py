"""Sliding-window inference with weighted blending, written as it goes (memory bounded by the tile size).

Tiles sit on a regular grid spread evenly between the raster edges. Each tile's probabilities are weighted by a
smooth window that is highest in the tile centre, summed, and divided by the summed weights, so tile seams vanish
and a pixel seen by one tile only (raster borders) keeps that tile's value.

The rooms: `tiling` (the grid, weights, batches), `inputs` (bands, aligned reading, normalisation, refusals),
`runner` (engines, ensembles, TTA), `blender` (open rows), `writer` (probability and mask), `predictor` (the
path of one prediction through them).
"""
from __future__ import annotations

import os
from typing import Sequence

from ...common.progress import Progress
from .inputs import CLIP_Z, InputReader, assign_bands, scene_statistics  # noqa: F401
from .predictor import Prediction, PredictOptions, PredictOutputs, predict_map, predict_rows  # noqa: F401
from .runner import ENGINES  # noqa: F401
from .tiling import TileGrid, blend_weights, fit_tile, tile_positions  # noqa: F401
from .writer import MASK_NODATA  # noqa: F401


def sliding_window_predict(package, rasters: str | os.PathLike | Sequence[str | os.PathLike], out_probability,
                           out_mask=None, out_polygons=None, *, progress: Progress | None = None,
                           **options) -> Prediction:
    """`predict_map` with outputs and options as keywords (scripts, notebooks): see `PredictOptions`."""
    return predict_map(package, rasters, PredictOutputs(out_probability, out_mask, out_polygons),
                       PredictOptions(**options), progress)
