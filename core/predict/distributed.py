"""Prediction on a Dask cluster: the window cut into strips of output rows aligned to the tile grid, one task per
strip; each worker reads its strip's inputs and writes its strip's probability and mask itself (shared paths), and
the client assembles the final maps (GDAL VRT → COG) and the polygons.

A strip computes the tile rows that reach into it (its halo) with exactly the batches and the per-pixel summation
order of a whole-window run (`predictor.predict_rows`), so the assembled maps equal the in-process ones bit for bit.
Only small descriptions of the work and the inputs' health travel through the scheduler.

Strip files live in a hidden folder beside the probability output (`.<name>.<key>.lmblocks/`). Each finished strip
writes a JSON record last, with its rows and the checksums of its files, so a run that was interrupted (client
killed, cluster lost) resumes from the strips already complete; a canceled or refused run removes the folder, a
successful one too.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...common.errors import Canceled, InputError
from ...common.outputs import atomic_output, make_folder
from ...common.progress import Progress, SubProgress, check_canceled
from ...models.devices import pick_device
from .. import raster
from ..postprocess import MaskRules, polygonize_mask
from .inputs import InputHealth, InputReader, check_pixel_size, refuse_meaningless, warn_sanitised
from .runner import tile_runner
from .tiling import TileGrid
from .writer import MapWriter

BLOCKS_TAG = "lmblocks"  # the strip folder of a run: `.<probability stem>.<key>.lmblocks`
MARKER = "landslide_mapper_blocks.json"  # in every strip folder: what made it (nothing else is ever removed)
CANCEL = "CANCELED"  # written by the client to stop the strips still running
CONNECT_TIMEOUT = 20  # seconds to reach a scheduler
WORKER_WAIT = 120  # seconds to wait for a scheduler's first worker
STOP_WAIT = 300  # seconds a cancel waits for running strips to stop (each stops at its next batch)


@dataclass(frozen=True)
class StripJob:
    """One strip's work, as sent to a worker (small: paths, the grid, a few numbers)."""

    package: str
    rasters: tuple[str, ...]
    sources: tuple[tuple[int, int], ...]
    grid: TileGrid
    rows: tuple[int, int]
    index: int
    batch_size: int
    engine: str        # "onnx" or "torch": what the client chose
    engine_name: str   # what tile_runner must report on the worker too (e.g. "ONNX Runtime, int8")
    device: str
    tta: bool
    mean: np.ndarray
    std: np.ndarray
    threshold: float
    model: str
    mask_rules: MaskRules | None
    with_mask: bool
    folder: str
    key: str
    predict_rows: Callable  # predictor.predict_rows (given by the predictor: this module sits below it)


def strip_files(folder: str | os.PathLike, index: int) -> tuple[Path, Path, Path]:
    """(probability, mask, record) of strip `index`."""
    folder = Path(folder)
    return (folder / f"strip-{index:05d}-probability.tif", folder / f"strip-{index:05d}-mask.tif",
            folder / f"strip-{index:05d}.json")


def plan_strips(grid: TileGrid, strip_rows: int) -> list[tuple[int, int]]:
    """Output rows [first, end) of each strip: boundaries on tile-row starts, strips of about `strip_rows` rows."""
    starts = [0]
    for r in grid.rows[1:]:
        if r - starts[-1] >= strip_rows:
            starts.append(r)
    return list(zip(starts, starts[1:] + [grid.height]))


def even_strips(grid: TileGrid, workers: int) -> list[tuple[int, int]]:
    """Strips that finish soonest on `workers` workers: each strip computes its tile rows plus one halo row, so more
    strips cost more work; the count minimises rounds × tile rows per strip, boundaries balance the strips."""
    k, workers = len(grid.rows), max(workers, 1)
    n = min(range(1, k + 1), key=lambda m: (math.ceil(m / workers) * (k + m - 1) / m, -m))
    per = (k + n - 1) / n  # tile rows each strip computes: the k rows plus one halo row per boundary
    bounds = sorted({min(k - 1, max(1, round(1 + i * (per - 1)))) for i in range(1, n)})
    starts = [0] + [grid.rows[b] for b in bounds]
    return list(zip(starts, starts[1:] + [grid.height]))


# ------------------------------------------------------------------------------------------------- the worker
_RUNNERS: dict[tuple, object] = {}  # per worker process: the package read and its networks built once
_RUNNERS_LOCK = threading.Lock()


def _runner(job: StripJob):
    path = Path(job.package)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, job.engine, job.device, job.tta)
    with _RUNNERS_LOCK:
        if key not in _RUNNERS:
            from ...models.package import read_package

            run, name = tile_runner(read_package(path), pick_device(job.device), job.tta, job.engine,
                                    lambda message: None)
            if name != job.engine_name:
                raise InputError(
                    f"A Dask worker would run the network with {name} but the client chose {job.engine_name}; "
                    f"every strip must be computed alike. Keep the package's ONNX cache ('{path.name}.onnx' beside "
                    f"'{path}') on the shared path and writable, install the same onnxruntime on every worker, "
                    f"or choose the engine (ENGINE) explicitly.")
            _RUNNERS.clear()  # one package at a time per worker: memory stays that of one network set
            _RUNNERS[key] = run
        return _RUNNERS[key]


class _StripProgress:
    """A strip's progress on a worker: canceled when the client asked (the folder's CANCEL file) or removed it."""

    def __init__(self, folder: Path):
        self.folder = folder

    def set_progress(self, percent: float) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def is_canceled(self) -> bool:
        return not self.folder.is_dir() or (self.folder / CANCEL).exists()


def run_strip(job: StripJob) -> dict:
    """Predict one strip on a worker and write its files; returns its record (also written beside them, last)."""
    folder = Path(job.folder)
    progress = _StripProgress(folder)
    check_canceled(progress)  # never recreate a folder the client removed
    run_tiles = _runner(job)
    probability, mask, record_path = strip_files(folder, job.index)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        inputs = InputReader(stack, list(job.rasters), list(job.sources))
        writer = MapWriter(stack, inputs.grid, job.grid, probability, mask if job.with_mask else None,
                           threshold=job.threshold, model=job.model,
                           mask_rules=job.mask_rules if job.with_mask else None, cog=False, rows=job.rows)
        health = job.predict_rows(job.grid, inputs, run_tiles, job.mean, job.std, writer, job.batch_size,
                                  progress, rows=job.rows)
    record = {"key": job.key, "index": job.index, "rows": list(job.rows), "width": job.grid.width,
              "files": {p.name: _sha256(p) for p in (probability, mask) if job.with_mask or p == probability},
              "health": _health_dict(health), "absurd": inputs.absurd.tolist()}
    with atomic_output(record_path) as tmp:  # the record last: a strip without one is not complete
        Path(tmp).write_text(json.dumps(record))
    return record


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _health_dict(health: InputHealth) -> dict:
    return {"n_bands": health.n_bands, "n_valid": health.n_valid,
            **{name: getattr(health, name).tolist() for name in ("band_valid", "seen", "clipped", "low", "high")}}


def _health(record: dict) -> InputHealth:
    h = record["health"]
    health = InputHealth(h["n_bands"])
    health.n_valid = h["n_valid"]
    for name in ("band_valid", "seen", "clipped", "low", "high"):
        getattr(health, name)[:] = h[name]
    return health


def complete_record(folder: Path, index: int, key: str, rows: tuple[int, int], width: int,
                    with_mask: bool) -> dict | None:
    """The record of a strip finished by an earlier run, when it and its files check out; else None."""
    probability, mask, record_path = strip_files(folder, index)
    try:
        record = json.loads(record_path.read_text())
        wanted = {probability.name} | ({mask.name} if with_mask else set())
        if (record.get("key") != key or tuple(record.get("rows", ())) != tuple(rows) or record.get("width") != width
                or set(record.get("files", {})) != wanted):
            return None
        for name, digest in record["files"].items():
            if _sha256(folder / name) != digest:
                return None
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------------------------- the client
@contextmanager
def dask_client(address: str, workers: int, progress: Progress) -> Iterator[object]:
    """A client of the scheduler at `address`, or of a LocalCluster of `workers` single-thread processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("Predicting on a Dask cluster (DASK_SCHEDULER, WORKERS) needs the Python packages dask and "
                         "distributed in QGIS's Python: pip install dask distributed. Or leave DASK_SCHEDULER "
                         "empty and WORKERS at 1 to predict in this process.") from None
    cluster = None
    if address:
        address = address.strip()
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the address's or the scheduler's
            reason = str(exc).splitlines()[0][:300] if str(exc) else f"not a scheduler address ({type(exc).__name__})"
            raise InputError(
                f"Could not connect to the Dask scheduler at '{address}' (DASK_SCHEDULER): {reason}. Check the "
                f"address (e.g. tcp://127.0.0.1:8786) and that the scheduler runs (`dask scheduler`) with workers "
                f"(`dask worker {address}`), or leave DASK_SCHEDULER empty to predict in this process.") from None
    else:
        _python_for_workers()
        progress.log(f"Starting a local Dask cluster of {workers} single-thread worker processes.")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0")  # any free port: another cluster may hold 8787
        client = Client(cluster, set_as_default=False)
    try:
        _wait_for_workers(client, address, progress)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _python_for_workers() -> None:
    """Inside QGIS the process is QGIS, and sys.executable a guess (the first python3 on PATH, maybe another build):
    local worker processes must start the Python that QGIS embeds, or they cannot import its standard library."""
    import multiprocessing
    import sys

    running = Path(os.path.realpath("/proc/self/exe")) if os.path.exists("/proc/self/exe") else Path(sys.executable)
    if running.name.startswith("python"):
        return
    base, version = Path(sys.base_exec_prefix), f"{sys.version_info.major}.{sys.version_info.minor}"
    for python in (base / "bin" / f"python{version}", base / "bin" / "python3", base / "python.exe"):
        if python.is_file():
            multiprocessing.set_executable(str(python))
            return
    raise InputError(f"Cannot start local Dask worker processes from this application (no Python {version} found in "
                     f"'{base}'). Start a scheduler and workers yourself (`dask scheduler`, `dask worker`) and give "
                     f"its address in DASK_SCHEDULER, or set WORKERS to 1.")


def _wait_for_workers(client, address: str, progress: Progress) -> None:
    started = time.monotonic()
    while not client.scheduler_info().get("workers"):
        check_canceled(progress)
        if time.monotonic() - started > WORKER_WAIT:
            raise InputError(f"The Dask scheduler at '{address}' (DASK_SCHEDULER) has no workers after "
                             f"{WORKER_WAIT} s: start some with `dask worker {address}` on machines that see the "
                             f"input and output paths, then run again.")
        time.sleep(0.5)


def _stat_key(path) -> list:
    try:
        st = os.stat(path)
        return [os.path.abspath(str(path)), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path)]


def run_key(job_fields: dict, rasters, package_path, mask_rules: MaskRules | None) -> str:
    """What a strip's content depends on: inputs (path, size, time), package, grid, engine, statistics, rules."""
    rule_files = [getattr(mask_rules, n) for n in ("slope_raster", "water_raster", "scl_raster", "exclude")
                  if mask_rules is not None and getattr(mask_rules, n)]
    text = json.dumps({**job_fields, "rasters": [_stat_key(r) for r in rasters], "package": _stat_key(package_path),
                       "rules": repr(mask_rules), "rule_files": [_stat_key(r) for r in rule_files]},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def strip_folder(probability, key: str) -> Path:
    probability = Path(probability).absolute()
    return probability.parent / f".{probability.stem}.{key}.{BLOCKS_TAG}"


def remove_strip_folder(folder: Path) -> None:
    """Remove a strip folder of ours (it holds MARKER; nothing but our files is ever inside)."""
    if not (folder / MARKER).is_file():
        return
    for child in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink(missing_ok=True)
    folder.rmdir()


@dataclass(frozen=True)
class PredictorParts:
    """What the predictor lends a cluster run: its statistics, its row predictor (run on the workers) and its result."""

    statistics: Callable  # (package, options, inputs, grid, progress) -> (mean, std)
    predict_rows: Callable
    prediction: type


def predict_on_cluster(package, rasters, outputs, options, progress: Progress, checked: tuple[int, int, float],
                       sources, parts: PredictorParts):
    """predict_map on a Dask cluster (options.dask_scheduler) or a LocalCluster (options.workers processes)."""
    (tile, overlap, threshold), rasters = checked, [os.path.abspath(str(r)) for r in rasters]  # workers open paths
    device, engine, engine_name = _engine(package, options, progress)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        inputs = InputReader(stack, rasters, sources)
        check_pixel_size(package, inputs.grid, rasters[0])
        grid = TileGrid.fit(raster.window_from_extent(inputs.grid, options.extent), tile, overlap)
        mean, std = (np.asarray(a) for a in parts.statistics(package, options, inputs, grid, progress))
    with dask_client(options.dask_scheduler, options.workers, progress) as client:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        strips = plan_strips(grid, options.strip_rows) if options.strip_rows else even_strips(grid, n_workers)
        with_mask = bool(outputs.mask)
        fields = {"grid": repr(grid), "strips": strips, "sources": sources, "batch": options.batch_size,
                  "engine": engine_name, "device": device, "tta": options.tta, "threshold": threshold,
                  "mean": mean.tobytes().hex(), "std": std.tobytes().hex(), "mask": with_mask}
        key = run_key(fields, rasters, package.path, options.mask_rules)
        folder = strip_folder(outputs.probability, key)
        jobs = [StripJob(str(Path(package.path).absolute()), tuple(rasters), tuple(map(tuple, sources)), grid, rows,
                         i, options.batch_size, engine, engine_name, device, options.tta, mean, std, threshold,
                         package.path.name, options.mask_rules if with_mask else None, with_mask, str(folder), key,
                         parts.predict_rows)
                 for i, rows in enumerate(strips)]
        progress.log(f"{len(strips)} strips of ≈{strips[0][1] - strips[0][0]} rows on {n_workers} Dask worker(s) "
                     f"({engine_name} on {device}); strip files in {folder}")
        try:
            records = _run_strips(client, jobs, folder, progress, 85 if outputs.polygons else 95)
            health, n_polygons = _finish(package, rasters, sources, outputs, options, progress, records, jobs,
                                         (mean, std, threshold))
        except (Canceled, InputError):
            remove_strip_folder(folder)  # canceled or refused: nothing to resume
            raise
        except BaseException:
            done = len(list(folder.glob("strip-*.json"))) if folder.is_dir() else 0
            if done:
                progress.log(f"{done} finished strip(s) kept in {folder}: run again with the same parameters to "
                             f"resume, or delete that folder.")
            raise
        remove_strip_folder(folder)
    progress.log(f"Prediction written: {outputs.probability} ({grid.width}×{grid.height} px, {grid.n_tiles} tiles "
                 f"of {grid.tile_h}×{grid.tile_w} px in {len(strips)} strips on {n_workers} Dask worker(s), "
                 f"{engine_name} on {device}, threshold {threshold:.2f})")
    return parts.prediction(Path(outputs.probability), Path(outputs.mask) if outputs.mask else None,
                            Path(outputs.polygons) if outputs.polygons else None, n_polygons, threshold, device,
                            grid.n_tiles, (grid.tile_h, grid.tile_w), overlap, engine_name, health)


def _engine(package, options, progress: Progress) -> tuple[str, str, str]:
    """(device, engine, engine name) every worker must use: decided once, here (the int8 choice too)."""
    if options.device == "cuda":  # the GPUs are the workers': the client may have none
        return "cuda", "torch", "PyTorch"
    device = pick_device(options.device)
    _, engine_name = tile_runner(package, device, options.tta, options.engine, progress.log)
    return device.type, "torch" if engine_name == "PyTorch" else "onnx", engine_name


def _finish(package, rasters, sources, outputs, options, progress: Progress, records: list[dict],
            jobs: list[StripJob], stats) -> tuple[InputHealth, int | None]:
    """The strips' health merged and checked, the maps assembled, the polygons made from the assembled mask."""
    mean, std, threshold = stats
    health, absurd = InputHealth(len(sources)), np.zeros(len(sources), np.int64)
    for record in records:
        health.merge(_health(record))
        absurd += np.asarray(record["absurd"], np.int64)
    refuse_meaningless(package, rasters, sources, options.extent, health, absurd, mean, std)
    _assemble(Path(jobs[0].folder), len(jobs), outputs, jobs[0].with_mask, threshold, package.path.name)
    progress.set_progress(85 if outputs.polygons else 100)
    warn_sanitised(package, rasters, sources, absurd, health, progress)
    n_polygons = polygonize_mask(outputs.mask, outputs.polygons, outputs.probability, options.polygon_options,
                                 progress=SubProgress(progress, 85, 100)) if outputs.polygons else None
    return health, n_polygons


def _run_strips(client, jobs: list[StripJob], folder: Path, progress: Progress, span: float) -> list[dict]:
    """Records of every strip: those an earlier run finished (checked), the others computed by the workers."""
    if folder.exists() and not (folder / MARKER).is_file():
        raise InputError(f"'{folder}' exists but is not a strip folder of Landslide Mapper; move it away and run "
                         f"again. Nothing was written.")
    make_folder(folder)
    (folder / CANCEL).unlink(missing_ok=True)
    (folder / MARKER).write_text(json.dumps({"key": jobs[0].key, "strips": len(jobs)}))
    records: dict[int, dict] = {}
    for job in jobs:
        record = complete_record(folder, job.index, job.key, job.rows, job.grid.width, job.with_mask)
        if record is not None:
            records[job.index] = record
    if records:
        progress.log(f"Resuming: {len(records)} of {len(jobs)} strips were complete from an earlier run.")
    todo = [job for job in jobs if job.index not in records]
    futures = {client.submit(run_strip, job, key=f"landslide-strip-{job.key}-{job.index}", pure=False): job.index
               for job in todo}
    pending = set(futures)
    try:
        while pending:
            check_canceled(progress)
            finished = [f for f in pending if f.done()]
            for f in finished:
                pending.discard(f)
                records[futures[f]] = _result(f, jobs[futures[f]])
            progress.set_progress(span * len(records) / len(jobs))
            if not finished:
                time.sleep(0.1)
    except BaseException:
        _stop(client, pending, folder)
        raise
    return [records[i] for i in range(len(jobs))]


def _result(future, job: StripJob) -> dict:
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        raise RuntimeError(f"Strip {job.index} (rows {job.rows[0]}–{job.rows[1]}) killed every worker that ran it "
                           f"(out of memory?); give the workers more memory or use a smaller BATCH_SIZE/TILE_SIZE, "
                           f"then run again to resume.") from None


def _stop(client, pending: set, folder: Path) -> None:
    """Ask the running strips to stop (they check the CANCEL file at every batch) and wait until they did."""
    if folder.is_dir():
        (folder / CANCEL).touch()
    started = time.monotonic()
    while any(not f.done() for f in pending) and time.monotonic() - started < STOP_WAIT:
        time.sleep(0.1)
    client.cancel(list(pending))


def _assemble(folder: Path, n: int, outputs, with_mask: bool, threshold: float, model: str) -> None:
    """Strip files → the probability COG and the mask GeoTIFF, through GDAL VRTs (streamed, bounded memory)."""
    import rasterio.shutil
    from osgeo import gdal

    gdal.UseExceptions()
    parts = [("probability", outputs.probability, {"LANDSLIDE_MAPPER": "probability", "MODEL": model},
              "landslide_probability")]
    if with_mask:
        parts.append(("mask", outputs.mask, {"LANDSLIDE_MAPPER": "mask", "THRESHOLD": str(threshold)}, "landslide"))
    for name, out, tags, description in parts:
        files = [str(strip_files(folder, i)[0 if name == "probability" else 1]) for i in range(n)]
        vrt_path = folder / f"{name}.vrt"
        vrt = gdal.BuildVRT(str(vrt_path), files)
        vrt.GetRasterBand(1).SetDescription(description)
        vrt.SetMetadata(tags)
        vrt = None
        with atomic_output(out) as tmp:
            if name == "probability":  # as raster.create_raster(cog=True) writes it
                rasterio.shutil.copy(str(vrt_path), str(tmp), driver="COG", COMPRESS="DEFLATE", LEVEL=1,
                                     OVERVIEWS="AUTO", BLOCKSIZE=512, BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS",
                                     OVERVIEW_RESAMPLING="AVERAGE", PREDICTOR="FLOATING_POINT")
            else:
                with raster.open_raster(vrt_path) as src:
                    big = src.width >= 256 and src.height >= 256
                rasterio.shutil.copy(str(vrt_path), str(tmp), driver="GTiff", COMPRESS="DEFLATE",
                                     BIGTIFF="IF_SAFER", **({"TILED": "YES", "BLOCKXSIZE": 256, "BLOCKYSIZE": 256}
                                                            if big else {}))
            raster.check_tiff_complete(tmp, out)
