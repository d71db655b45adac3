"""A real scene: map the 2018 Hokkaido Eastern Iburi landslides with a model trained only on simulated events.

The Iburi data (../shared/data/iburi_2018_s2) has Sentinel-2 B2–B4 before and after the earthquake, no NIR and no
radar, and no labels. So the model here sees post-event colour and its change (post_B02…B04, dB02…dB04), learned
from simulated scenes, and standardises each band with the real scene's own statistics (its haze and seasonal
shift differ from the simulation); the result is judged by eye on the quick-look (scars are bright bare soil).
Runs through the Processing algorithms like `make demo`; writes demo_out/iburi/.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from demo import start_qgis, step  # noqa: E402 - same headless QGIS set-up as the main demo

BANDS = "post_B02,post_B03,post_B04,dB02,dB03,dB04"
DATA = HERE.parent.parent / "shared" / "data" / "iburi_2018_s2"


def quicklook(post_folder: Path, probability: str, polygons: str, png: Path) -> None:
    """Post-event true colour with the predicted landslide outlines in yellow, next to the probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import rasterio
    from osgeo import ogr

    rgb = []
    for band in ("B4", "B3", "B2"):
        with rasterio.open(post_folder / f"{band}.tif") as src:
            rgb.append(src.read(1).astype(np.float32))
            extent = (src.bounds.left, src.bounds.right, src.bounds.bottom, src.bounds.top)
    rgb = np.clip(np.stack(rgb, axis=-1) / 2500.0, 0, 1)
    with rasterio.open(probability) as src:
        prob = src.read(1)
    fig, axes = plt.subplots(1, 2, figsize=(16, 5.6), dpi=110)
    axes[0].imshow(rgb, extent=extent)
    ds = ogr.Open(polygons)
    layer = ds.GetLayer(0)
    for feat in layer:
        geom = feat.GetGeometryRef()
        for i in range(geom.GetGeometryCount()):
            ring = geom.GetGeometryRef(i).GetGeometryRef(0)
            pts = np.array(ring.GetPoints())
            axes[0].plot(pts[:, 0], pts[:, 1], color="yellow", linewidth=0.6)
    axes[0].set_title(f"Post-event Sentinel-2 with {layer.GetFeatureCount()} predicted landslides (yellow)")
    im = axes[1].imshow(np.ma.masked_invalid(prob), extent=extent, cmap="magma", vmin=0, vmax=1)
    axes[1].set_title("Landslide probability")
    fig.colorbar(im, ax=axes[1], fraction=0.03)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    ds = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out/iburi")
    parser.add_argument("--data", default=str(DATA), help="folder with pre/ and post/ B2, B3, B4 GeoTIFFs "
                        "(default: ../shared/data/iburi_2018_s2 next to the repository)")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    data = Path(args.data)
    missing = [f"{when}/{band}.tif" for when in ("pre", "post") for band in ("B2", "B3", "B4")
               if not (data / when / f"{band}.tif").is_file()]
    if missing:
        print(f"The real-scene demo needs the Iburi 2018 Sentinel-2 data in {data}, which lacks "
              f"{', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}.\n"
              f"It is a small, openly licensed (MIT) extract of Copernicus Sentinel-2 bands B2, B3 and B4 before and "
              f"after the 6 September 2018 Hokkaido Eastern Iburi earthquake (folders pre/ and post/), kept next to "
              f"the repository as ../shared/data/iburi_2018_s2 (README ▸ Data credits says where it comes from).\n"
              f"Put it there, or point at a copy with: .venv/bin/python scripts/iburi_demo.py --data FOLDER",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    app, _provider = start_qgis()
    custom = "custom"  # change_stack's preset "custom (BANDS list)"
    event = step("Simulate a training event", "simulate_event",
                 {"WIDTH": 1536, "HEIGHT": 1536, "SEED": 11, "OUTPUT_FOLDER": str(out / "sim")})
    sim_stack = step("Stack of post-event colour and its change (simulated)", "change_stack",
                     {"PRE": [event["PRE_S2"]], "POST": [event["POST_S2"]], "PRESET": custom, "BANDS": BANDS,
                      "OUTPUT": str(out / "sim_stack.tif")})["OUTPUT"]
    chips = step("Chips", "export_chips", {"INPUT": sim_stack, "LABELS": event["LABELS_VECTOR"], "TILE_SIZE": 128,
                                           "STRIDE": 96, "SPLIT_BLOCK": 384, "OUTPUT_FOLDER": str(out / "chips")})
    model = step("Train on the simulated event", "train",
                 {"CHIPS": chips["OUTPUT_FOLDER"], "EPOCHS": args.epochs, "BATCH_SIZE": 8, "LEARNING_RATE": 2e-3,
                  "PATIENCE": 4, "ENCODER_DEPTH": 4, "DECODER_CHANNELS": "64,32,16,16",
                  "OUTPUT": str(out / "colour_change.lmpkg")})
    pre = [str(data / "pre" / f"{b}.tif") for b in ("B2", "B3", "B4")]
    post = [str(data / "post" / f"{b}.tif") for b in ("B2", "B3", "B4")]
    stack = step("Stack of the real Iburi scene (bands named from the file names)", "change_stack",
                 {"PRE": pre, "POST": post, "PRESET": custom, "BANDS": BANDS, "OUTPUT": str(out / "iburi_stack.tif")})
    pred = step("Map the Iburi landslides", "predict",
                {"PACKAGE": model["OUTPUT"], "INPUT": stack["OUTPUT"], "MIN_AREA": 500, "MERGE_DISTANCE": 5,
                 "NORMALIZATION": "scene",  # the real scene is hazier (top-of-atmosphere-like) than the simulated one
                 "OUTPUT_PROBABILITY": str(out / "iburi_probability.tif"), "OUTPUT_MASK": str(out / "iburi_mask.tif"),
                 "OUTPUT_POLYGONS": str(out / "iburi_landslides.gpkg")})
    png = out / "iburi_quicklook.png"
    quicklook(data / "post", pred["OUTPUT_PROBABILITY"], pred["OUTPUT_POLYGONS"], png)
    print(f"\n   {pred['POLYGON_COUNT']} landslide polygons; quick-look {png}; "
          f"{(time.perf_counter() - started) / 60:.1f} min")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
