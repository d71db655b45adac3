"""Training chips: labels with a class table, sampling, spatially blocked splits, normalisation statistics.

Native chip folder layout:
    chips.json   manifest (layout, bands, tile size, sampling, CRS, pixel size, class table, counts per split)
    stats.json   per-band mean/std/min/max/p2/p98 over training chips, nodata excluded
    index.csv    one row per chip: id, split, pixel offsets, map bounds, valid and positive fractions
    images/<id>.tif   Float32 chips (NaN = nodata), band descriptions = stack band names
    labels/<id>.tif   UInt8 class values of the class table: 0 background, 1…254 classes, 255 = ignore
                      (nodata, or outside the labelled region)
    preview.png       a few chips with their labels drawn over them
The same export can be written as ArcGIS "Classified Tiles" instead (core/chips/arcgis.py); `load_chips` reads
both, so training takes either folder.
"""
from ..labels import (  # noqa: F401
    IGNORE, CLASSES, PALETTE, LabelClass, parse_class_list, mark_landslide_classes, landslide_lut, PolygonSet,
    raster_window_bounds, read_polygons, LabelSource, read_label_polygons, open_labels, rasterize_labels,
    LabelReader, hex_rgb,
)
from .statistics import BandStatistics  # noqa: F401
from .splits import SPLITS, SplitPlan  # noqa: F401
from .layouts import CHIP_FORMAT, LAYOUTS, WRITERS, CHIP_FILES, ARCGIS_FILES, CHIP_FOLDER, NativeLayout  # noqa: F401
from .preview import write_preview  # noqa: F401
from .export import SAMPLING_MODES, ChipExport, LabelOptions, Sampling, SplitOptions, export_chips  # noqa: F401
from .chipset import READ_BYTES, ChipSet, binary_manifest  # noqa: F401
from .loading import is_classified_tiles, load_chips  # noqa: F401
