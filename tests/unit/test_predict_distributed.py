"""Prediction on a Dask cluster (issue 19): a real LocalCluster of two worker processes on the loopback, a real
random-weight Unet; the assembled maps must equal the in-process ones bit for bit."""
import itertools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from landslide_mapper.common.errors import Canceled, InputError
from landslide_mapper.core.postprocess import PolygonOptions
from landslide_mapper.core.predict import (
    PredictOptions,
    PredictOutputs,
    distributed,
    predict_map,
)
from landslide_mapper.models.package import make_manifest, read_package, write_package
from landslide_mapper.models.registry import create_model

distributed_pkg = pytest.importorskip("distributed")

BANDS = ["pre_VV", "post_VV", "dNDVI"]
KWARGS = {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}
# Not a multiple of the strip or tile size; the extent cuts rows and columns off every side.
HEIGHT, WIDTH = 301, 187
EXTENT = (400000 + 7 * 10, 6800000 - 293 * 10, 400000 + 180 * 10, 6800000 - 5 * 10)  # xmin, ymin, xmax, ymax


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    torch.manual_seed(19)
    net = create_model("Unet", "resnet18", 3, **KWARGS)
    manifest = make_manifest(
        members=[{"architecture": "Unet", "encoder": "resnet18", "model_kwargs": KWARGS,
                  "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=BANDS, band_stats=[{"name": b, "mean": 0.0, "std": 1.0} for b in BANDS],
        tile_size=64, overlap=16, threshold=0.5, classes=[])
    return read_package(write_package(tmp_path_factory.mktemp("pkg") / "r.lmpkg", manifest, [net.state_dict()]))


@pytest.fixture(scope="module")
def cluster():
    """Two single-thread worker processes on 127.0.0.1, shared by the tests of this module."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as c, Client(c, set_as_default=False) as client:
        yield c, client


@pytest.fixture
def stack(tmp_path):
    from support import write_raster

    rng = np.random.default_rng(19)
    data = rng.normal(size=(3, HEIGHT, WIDTH)).astype(np.float32)
    data += np.sin(np.arange(WIDTH) / 7.0)[None, None, :].astype(np.float32) * 2
    data[:, 40:52, 60:90] = np.nan  # all bands
    data[1, 200:204, 20:120] = np.nan  # one band
    folder = tmp_path / "in"
    folder.mkdir()
    return write_raster(folder / "stack.tif", data, BANDS, nodata=np.nan)


def _options(**kw):
    return PredictOptions(extent=EXTENT, batch_size=2, engine="onnx", device="cpu",
                          polygon_options=PolygonOptions(), **kw)


def _run(package, stack, out: Path, progress=None, **kw):
    out.mkdir(exist_ok=True)
    outputs = PredictOutputs(out / "p.tif", out / "m.tif", out / "poly.gpkg")
    return predict_map(package, stack, outputs, _options(**kw), progress)


def _maps(out: Path):
    from osgeo import ogr

    with rasterio.open(out / "p.tif") as p, rasterio.open(out / "m.tif") as m:
        prob, mask, meta = p.read(1), m.read(1), (p.transform, p.shape, p.nodata is not None, m.transform)
    ds = ogr.Open(str(out / "poly.gpkg"))
    polys = {f.GetGeometryRef().ExportToWkt() for f in ds.GetLayer(0)}
    return prob.view(np.uint32), mask, polys, meta


@pytest.fixture
def reference(package, stack, tmp_path):
    _run(package, stack, tmp_path / "ref")
    return _maps(tmp_path / "ref")


def _same(a, b):
    assert np.array_equal(a[0], b[0]), "probability differs (bits)"
    assert np.array_equal(a[1], b[1]), "mask differs"
    assert a[2] == b[2], "polygons differ"
    assert a[3] == b[3]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Recorder:
    def __init__(self, on_progress=None, cancel_after=None):
        self.logs, self.on_progress, self.cancel_after, self.percent = [], on_progress, cancel_after, 0.0

    def set_progress(self, percent):
        self.percent = percent
        if self.on_progress:
            self.on_progress(percent)

    def log(self, message):
        self.logs.append(message)

    def is_canceled(self):
        return self.cancel_after is not None and self.percent >= self.cancel_after


def test_cluster_equals_in_process_bit_for_bit(package, stack, tmp_path, cluster, reference):
    c, _ = cluster
    result = _run(package, stack, tmp_path / "d", dask_scheduler=c.scheduler_address, strip_rows=40)
    got = _maps(tmp_path / "d")
    _same(got, reference)
    assert (got[1] == 1).any() and (got[1] == 0).any() and (got[1] == 255).any()  # a mask worth comparing
    assert len(got[2]) > 3
    assert result.tiles > 1 and result.engine.startswith("ONNX Runtime")
    assert _leftovers(tmp_path / "d") == ["m.tif", "p.tif", "poly.gpkg"]  # strip files gone


def test_vrt_input_equals_geotiff(package, stack, tmp_path, cluster, reference):
    """A VRT mosaic (gdalbuildvrt) of the stack cut in two gives the same map."""
    from osgeo import gdal

    gdal.UseExceptions()
    halves = []
    for i, (yoff, ysize) in enumerate([(0, 150), (150, HEIGHT - 150)]):
        path = str(tmp_path / f"half{i}.tif")
        gdal.Translate(path, stack, srcWin=[0, yoff, WIDTH, ysize])
        halves.append(path)
    vrt = gdal.BuildVRT(str(tmp_path / "mosaic.vrt"), halves)
    for b, name in enumerate(BANDS, start=1):
        vrt.GetRasterBand(b).SetDescription(name)
    vrt = None
    _run(package, str(tmp_path / "mosaic.vrt"), tmp_path / "v", dask_scheduler=cluster[0].scheduler_address,
         strip_rows=60)
    _same(_maps(tmp_path / "v"), reference)


def test_worker_killed_mid_run_still_gives_the_identical_result(package, stack, tmp_path, cluster, reference):
    c, client = cluster
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_one(percent):
        if percent > 0 and not killed:  # a strip is done, the other worker is busy with the next ones
            os.kill(pids[0], signal.SIGKILL)  # a worker process this test's cluster started
            killed.append(pids[0])

    _run(package, stack, tmp_path / "k", Recorder(kill_one), dask_scheduler=c.scheduler_address, strip_rows=20)
    assert killed
    _same(_maps(tmp_path / "k"), reference)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it for the next tests


def test_cancel_leaves_nothing(package, stack, tmp_path, cluster):
    out = tmp_path / "c"
    with pytest.raises(Canceled):
        _run(package, stack, out, Recorder(cancel_after=1e-9), dask_scheduler=cluster[0].scheduler_address,
             strip_rows=20)
    assert _leftovers(out) == []
    assert _leftovers(Path(stack).parent) == ["stack.tif"]


def test_rerun_resumes_from_complete_strips_and_checks_them(package, stack, tmp_path, cluster, reference):
    out = tmp_path / "r"
    address = cluster[0].scheduler_address

    class Lost(Exception):
        pass

    def lose_connection(percent):
        if percent >= 40:
            raise Lost("the client lost its cluster")

    with pytest.raises(Lost):
        _run(package, stack, out, Recorder(lose_connection), dask_scheduler=address, strip_rows=20)
    (folder,) = [p for p in out.iterdir() if p.name.endswith(".lmblocks")]
    records = sorted(folder.glob("strip-*.json"))
    assert len(records) >= 2 and not (out / "p.tif").exists()
    index = json.loads(records[0].read_text())["index"]
    prob = distributed.strip_files(folder, index)[0]
    prob.write_bytes(prob.read_bytes()[:-100])  # a damaged strip is computed again, never trusted
    progress = Recorder()
    _run(package, stack, out, progress, dask_scheduler=address, strip_rows=20)
    resumed = [m for m in progress.logs if m.startswith("Resuming")]
    assert resumed and resumed[0].startswith(f"Resuming: {len(records) - 1} of ")
    _same(_maps(out), reference)
    assert _leftovers(out) == ["m.tif", "p.tif", "poly.gpkg"]


def test_plan_strips_cover_the_window_on_tile_row_starts():
    from landslide_mapper.core.predict import TileGrid
    from rasterio.windows import Window

    grid = TileGrid.fit(Window(0, 0, 500, 1001), 64, 16)
    strips = distributed.plan_strips(grid, 100)
    assert strips[0][0] == 0 and strips[-1][1] == 1001
    assert all(a[1] == b[0] for a, b in itertools.pairwise(strips))
    assert all(s[0] in grid.rows for s in strips)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "127.0.0.1:9", "foo", "http://127.0.0.1:8786"])
def test_unreachable_scheduler_is_a_clear_refusal(package, stack, tmp_path, monkeypatch, address):
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT", 2)
    with pytest.raises(InputError, match=r"DASK_SCHEDULER.*dask scheduler"):
        _run(package, stack, tmp_path / "x", dask_scheduler=address)
    assert _leftovers(tmp_path / "x") == []


def test_even_strips_balance_the_tile_rows_each_strip_computes():
    from rasterio.windows import Window

    from landslide_mapper.core.predict import TileGrid

    grid = TileGrid.fit(Window(0, 0, 300, 8192), 1024, 64)  # 9 tile rows
    strips = distributed.even_strips(grid, 2)
    assert len(strips) == 2 and strips[0][0] == 0 and strips[-1][1] == 8192
    th = grid.data_shape[0]
    computed = [sum(1 for r in grid.rows if r < end and r + th > first) for first, end in strips]
    assert computed == [5, 5]
    assert distributed.even_strips(TileGrid.fit(Window(0, 0, 50, 60), 64, 16), 8) == [(0, 60)]
