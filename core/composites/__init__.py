"""Sentinel-2 and Sentinel-1 composites over several acquisitions, computed window by window.

Sentinel-2: clouds, cloud shadows and snow are masked with the scene classification (SCL) and, where given, a cloud
probability raster; 20/60 m bands are resampled onto the 10 m output grid; then per pixel either the greenest clear
observation (maximum NDVI, the "quality mosaic" of the Jølster study), or the median or a percentile of the clear
observations. Reflectance stays in the L2A scale (×10⁴), with the offset of processing baseline ≥ 04.00 removed so old
and new scenes mix.

Sentinel-1: GRD backscatter (VV, VH) in linear power or dB, optionally speckle-filtered (boxcar, Lee, refined Lee),
median over the scenes of an orbit direction in linear power, written in dB.

Acquisitions may be on different grids (tiles, UTM zones): each is warped onto the output grid window by window, so
memory is bounded by the window size times the number of dates, never by the scene size.
"""
from .shared import COMPOSITE_BLOCK, RASTER_SUFFIXES, nan_percentile, CompositeResult  # noqa: F401
from .s2_scenes import (  # noqa: F401
    DEFAULT_SCL_MASK, SCL_CLASSES, S2_METHODS, BandFile, S2Acquisition, read_s2_acquisition, parse_classes,
)
from .s2 import s2_composite  # noqa: F401
from .s1_scenes import S1_UNITS, ORBITS, S1Scene, read_s1_scene  # noqa: F401
from .speckle import (  # noqa: F401
    SPECKLE_FILTERS, DEFAULT_ENL, boxcar_filter, lee_filter, refined_lee_filter, speckle_filter,
)
from .s1 import s1_composite  # noqa: F401
