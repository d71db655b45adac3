"""The simulated event written as a folder: rasters, labels and outlines, with known truth."""
from __future__ import annotations

import argparse
import errno
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import affine
import numpy as np
from osgeo import gdal, ogr, osr
from rasterio.crs import CRS

from .. import raster
from ...common.errors import InputError
from ...common.outputs import FolderKind, atomic_output, refuse_unsafe_target
from ..postprocess import check_vector_written
from ...common.progress import PrintProgress, Progress, check_canceled, or_null
from ..raster import DEFAULT_BLOCK, block_windows, count_windows, create_raster
from .fields import draw_scene
from .geometry import LANDSLIDES_PER_250K_PX, Landslides, place_clouds, place_landslides, ring_wkb
from .render import S1_BANDS, S2_BANDS, render_window


@dataclass
class SimulatedEvent:
    """Paths and grid of one simulated event scene (all rasters share one grid)."""

    pre_s2: Path
    post_s2: Path
    pre_s1: Path
    post_s1: Path
    dem: Path
    labels_raster: Path
    labels_vector: Path
    width: int
    height: int
    crs: str
    transform: affine.Affine
    n_landslides: int


@contextmanager
def _fixed_ogr_date():
    """Pin the timestamp GeoPackage writes, so the same seed gives byte-identical files."""
    old = gdal.GetConfigOption("OGR_CURRENT_DATE")
    gdal.SetConfigOption("OGR_CURRENT_DATE", "2000-01-01T00:00:00.000Z")
    try:
        yield
    finally:
        gdal.SetConfigOption("OGR_CURRENT_DATE", old)


def _write_polygons(path: Path, slides: Landslides, crs: CRS, origin) -> None:
    """The outlines as a `landslides` polygon layer (class=1, name='landslide') in the scene CRS."""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs.to_wkt())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    with _fixed_ogr_date():
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
        if ds is None:
            raise InputError(f"Cannot create GeoPackage '{path}'.")
        layer = ds.CreateLayer("landslides", srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))
        name = ogr.FieldDefn("name", ogr.OFTString)
        name.SetWidth(32)
        layer.CreateField(name)
        layer.CreateField(ogr.FieldDefn("area_m2", ogr.OFTReal))
        layer.StartTransaction()
        for ring in slides.rings:
            feat = ogr.Feature(layer.GetLayerDefn())
            geom = ogr.CreateGeometryFromWkb(ring_wkb(ring + np.asarray(origin)))
            feat.SetGeometry(geom)
            feat.SetField("class", 1)
            feat.SetField("name", "landslide")
            feat.SetField("area_m2", float(geom.GetArea()))
            if layer.CreateFeature(feat) != ogr.OGRERR_NONE:
                raise OSError(errno.EIO, "writing a landslide outline failed", str(path))
        if layer.CommitTransaction() != ogr.OGRERR_NONE:
            raise OSError(errno.EIO, "saving the landslide outlines failed", str(path))
        ds = None
    check_vector_written(path, len(slides.rings), path)


MAX_SCENE_PIXELS = 2 ** 28  # ~16k × 16k: larger scenes would need more memory (and hours) than a demo is worth

SIMULATED_EVENT = FolderKind("simulated scene", "labels.gpkg", frozenset(
    [f"{n}.tif{x}" for n in ("pre_s2", "post_s2", "pre_s1", "post_s1", "dem", "labels") for x in ("", ".aux.xml")]
    + ["labels.gpkg"]))


def _check_settings(pixel_size: float, landslide_density: float, cloud_fraction: float, block: int) -> None:
    if not pixel_size > 0:
        raise InputError(f"Pixel size must be positive, not {pixel_size}.")
    if landslide_density < 0:
        raise InputError(f"Landslide density must be zero or more, not {landslide_density}.")
    if not 0.0 <= cloud_fraction <= 0.5:
        raise InputError(f"Cloud fraction must be between 0 and 0.5, not {cloud_fraction}.")
    if block < 16:
        raise InputError(f"Block size must be at least 16 pixels, not {block}.")


def simulate_event(out_dir, width: int = 512, height: int = 512, seed: int = 0, pixel_size: float = 10.0,
                   crs: str = "EPSG:32632", origin: tuple[float, float] = (400000.0, 6800000.0),
                   landslide_density: float = 1.0, cloud_fraction: float = 0.03, block: int = DEFAULT_BLOCK,
                   progress: Progress | None = None) -> SimulatedEvent:
    """Write a synthetic pre/post event scene with known landslide truth into `out_dir` (see module docstring)."""
    progress = or_null(progress)
    width, height, block = int(width), int(height), int(block)
    if width < 16 or height < 16:
        raise InputError(f"A simulated scene needs at least 16×16 pixels, not {width}×{height}.")
    if width * height > MAX_SCENE_PIXELS:
        raise InputError(f"A simulated scene of {width}×{height} pixels (WIDTH × HEIGHT) is too large: at most "
                         f"{MAX_SCENE_PIXELS:,} pixels (e.g. 16384×16384) are supported. Give a smaller WIDTH or "
                         f"HEIGHT.")
    _check_settings(pixel_size, landslide_density, cloud_fraction, block)
    try:
        crs_obj = CRS.from_user_input(crs)
    except Exception as exc:  # rasterio raises CRSError with a terse message
        raise InputError(f"'{crs}' is not a coordinate reference system GDAL knows ({exc}).") from None
    if not crs_obj.is_projected:
        raise InputError(f"The simulated scene needs a projected CRS in metres; '{crs}' is not projected.")

    out = Path(out_dir)
    refuse_unsafe_target(out.absolute(), is_dir=True, parameter="OUTPUT_FOLDER", kind=SIMULATED_EVENT)
    transform = affine.Affine.translation(float(origin[0]), float(origin[1])) * affine.Affine.scale(pixel_size,
                                                                                                    -pixel_size)
    rng = np.random.default_rng(seed)
    scene = draw_scene(rng, (width * pixel_size, height * pixel_size))
    n_target = int(round(landslide_density * width * height / 250000.0 * LANDSLIDES_PER_250K_PX))
    if landslide_density > 0:
        n_target = max(n_target, 3)
    slides = place_landslides(scene, rng, n_target, width, height, pixel_size, progress)
    progress.log(f"Placed {len(slides)} of {n_target} landslides.")
    clouds = {"post": place_clouds(rng, cloud_fraction, width, height, pixel_size, slides),
              "pre": place_clouds(rng, cloud_fraction / 3.0, width, height, pixel_size, slides)}
    progress.set_progress(5.0)

    names = ("pre_s2", "post_s2", "pre_s1", "post_s1", "dem", "labels")
    grid = dict(width=width, height=height, crs=crs_obj, transform=transform)
    specs = {
        "pre_s2": dict(dtype="uint16", descriptions=S2_BANDS, nodata=0, tags={"EPOCH": "pre", "SENSOR": "S2"}),
        "post_s2": dict(dtype="uint16", descriptions=S2_BANDS, nodata=0, tags={"EPOCH": "post", "SENSOR": "S2"}),
        "pre_s1": dict(dtype="float32", descriptions=S1_BANDS, nodata=float("nan"),
                       tags={"EPOCH": "pre", "SENSOR": "S1", "UNITS": "dB"}),
        "post_s1": dict(dtype="float32", descriptions=S1_BANDS, nodata=float("nan"),
                        tags={"EPOCH": "post", "SENSOR": "S1", "UNITS": "dB"}),
        "dem": dict(dtype="float32", descriptions=("elevation",), nodata=float("nan"), tags={"UNITS": "m"}),
        "labels": dict(dtype="uint8", descriptions=("label",), nodata=255,
                       tags={"CLASSES": "0=not landslide,1=landslide"}),
    }
    common_tags = {"SIMULATED": "landslide_mapper.core.simulate", "SEED": seed}
    # The scene appears as a whole folder or not at all; it replaces only an earlier simulated scene.
    with ExitStack() as stack:
        # a bounded block cache keeps memory flat for any scene size; compression uses every core
        stack.enter_context(raster.bounded_gdal_cache(GDAL_NUM_THREADS="ALL_CPUS"))
        folder = stack.enter_context(atomic_output(out, is_dir=True, kind=SIMULATED_EVENT))
        with raster.ogr_writing(out / "labels.gpkg"):
            _write_polygons(folder / "labels.gpkg", slides, crs_obj, (transform.c, transform.f))
        dsts = {}
        for name, spec in specs.items():
            tags = {**common_tags, **spec.pop("tags")}
            dsts[name] = stack.enter_context(create_raster(folder / f"{name}.tif", **grid, **spec, tags=tags))
        n_windows = count_windows(width, height, block)
        for i, window in enumerate(block_windows(width, height, block)):
            check_canceled(progress)
            layers = render_window(scene, slides, clouds, rng, window, transform, pixel_size)
            for name, dst in dsts.items():
                dst.write(layers[name], window=window)
            progress.set_progress(5.0 + 95.0 * (i + 1) / n_windows)

    paths = {name: out / f"{name}.tif" for name in names}
    return SimulatedEvent(pre_s2=paths["pre_s2"], post_s2=paths["post_s2"], pre_s1=paths["pre_s1"],
                          post_s1=paths["post_s1"], dem=paths["dem"], labels_raster=paths["labels"],
                          labels_vector=out / "labels.gpkg", width=width, height=height,
                          crs=crs_obj.to_string(), transform=transform, n_landslides=len(slides))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m landslide_mapper.core.simulate",
                                     description="Write a synthetic landslide event scene with known truth.")
    parser.add_argument("out_dir")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pixel-size", type=float, default=10.0)
    parser.add_argument("--crs", default="EPSG:32632")
    parser.add_argument("--density", type=float, default=1.0, help="landslide density multiplier (1 ≈ 25 per 500²)")
    parser.add_argument("--cloud-fraction", type=float, default=0.03)
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK)
    args = parser.parse_args(argv)
    try:
        event = simulate_event(args.out_dir, width=args.width, height=args.height, seed=args.seed,
                               pixel_size=args.pixel_size, crs=args.crs, landslide_density=args.density,
                               cloud_fraction=args.cloud_fraction, block=args.block, progress=PrintProgress())
    except InputError as exc:
        parser.error(str(exc))
    print(f"Wrote {event.width}×{event.height} scene with {event.n_landslides} landslides to "
          f"{os.path.abspath(args.out_dir)}")
    return 0
