"""Accuracy on data the model never saw: the plugin's training defaults vs a plain hand-written training loop.

Data sets
- `arcgis_s2`: the real ArcGIS Pro Classified Tiles export in ../shared/data/arcgis_classified_tiles_s2 (Sentinel-2
  R, G, B, NIR; class 2 = landslide), split by spatial blocks (stripes of tile rows, one landslide cluster each)
  into train / validation / test, dropping tiles that overlap two splits; the same split for every seed.
- `simulated_shift`: two simulated event scenes (core/simulate.py, pre + post S2 bands): the model trains and
  validates on one; it is tested on another scene whose post image has smooth haze (added path radiance, strongest
  in blue) and whose both images have a season shift (NIR × 0.85, red × 1.10), as a later acquisition would.

Contestants (same network Unet/resnet18, same number of epochs, same seed, CPU)
- plugin: `core.training.train_model` with every TrainConfig default except epochs/seed/device; the package's own
  threshold is used on the test tiles.
- reference: the loop a careful user writes in an afternoon with segmentation-models-pytorch: Adam 1e-3,
  BCE + Dice, batch 16, flips and 90° rotations, one pass over the training tiles per epoch, best epoch and
  threshold (0.05 … 0.95) on pooled validation pixels.

Test F1 is pooled over all test pixels (labels of nodata pixels left out), computed here independently.
Environment: ACCURACY_SEEDS (default 3), ACCURACY_EPOCHS (default 12, the issue's budget; on a busy 2-core machine
3 epochs of the real data took ~4 min per contestant and seed, and no contestant left F1 ≈ 0 there), ACCURACY_DATA (comma list),
ACCURACY_LEVERS (comma list of names in LEVERS, or 'all': each trained with the plugin's defaults changed in that
way, on each data set, and reported as the F1 change against the defaults over the same seeds), ACCURACY_LEVERS_ONLY=1
(skip the reference loop), ACCURACY_SKIP_DEFAULTS=1 (levers only, their absolute F1), ACCURACY_THREADS (torch
threads, default 1).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arcgis_classified_tiles_s2"
LANDSLIDE = 2
# The machine this was written on had 2 CPU cores shared by 4 jobs: a compact U-Net (resnet18 encoder, 3 levels,
# decoder 64-32-16, the plugin's ENCODER_DEPTH=3) keeps a training run near a minute. Both contestants use it.
NETWORK = {"encoder_depth": 3, "decoder_channels": [64, 32, 16]}

# One change to the plugin's defaults each (TrainConfig fields); measured against the defaults on the same seeds.
LEVERS = {
    "batch16": {"batch_size": 16},
    "crop128": {"crop_size": 128},
    "crop128_positives_1": {"crop_size": 128, "positive_fraction": 1.0},
    "crop128_positives_0": {"crop_size": 128, "positive_fraction": 0.0},
    "crop128_focal_tversky": {"crop_size": 128, "loss": "focal_tversky"},
    "crop128_lovasz": {"crop_size": 128, "loss": "lovasz"},
    "crop128_bce": {"crop_size": 128, "loss": "bce"},
    "crop128_adamw": {"crop_size": 128, "optimizer": "adamw", "weight_decay": 1e-2},
    "crop128_brightness_noise": {"crop_size": 128, "brightness": 0.1, "noise": 0.05},
    "crop128_lr_3e-3": {"crop_size": 128, "learning_rate": 3e-3},
    "positives_1": {"positive_fraction": 1.0},
    "loss_focal_tversky": {"loss": "focal_tversky"},
    "no_augment": {"augment": False},
    "loss_lovasz": {"loss": "lovasz"},
    "brightness_noise": {"brightness": 0.1, "noise": 0.05},
    "lr_3e-3": {"learning_rate": 3e-3},
    "cosine": {"schedule": "cosine"},
    "ema": {"ema": 0.99},
    "cosine_ema": {"schedule": "cosine", "ema": 0.99},
    "cosine_ema_positives_1": {"schedule": "cosine", "ema": 0.99, "positive_fraction": 1.0},
}


# ---------------------------------------------------------------------------------------------- data
def _block_split(origins: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Stripes of tile rows (the export's tiles overlap by half a tile): rows 0–2 test, 4–10 train, 12–14
    validation; rows 3 and 11 overlap both neighbours and are dropped, so no pixel is in two splits. Each stripe
    holds one of the export's landslide clusters."""
    rows = np.rint((origins[:, 1].max() - origins[:, 1]) / (extent[1] / 2)).astype(int)
    split = np.where(rows <= 2, "test", np.where(rows <= 10, "train", "validation"))
    split[(rows == 3) | (rows == 11)] = "dropped"
    return split.astype(str)


def real_data():
    """(train/validation ChipSet with train-only statistics, test images, test labels)."""
    import rasterio
    from landslide_mapper.core.chips.arcgis import read_classified_tiles, tile_pairs
    from landslide_mapper.core.chips import BandStatistics

    chips = read_classified_tiles(DATA, [LANDSLIDE])
    origins = []
    for image, _ in tile_pairs(DATA):
        with rasterio.open(image) as src:
            origins.append((src.transform.c, -src.transform.f))
            extent = np.array([src.width * src.transform.a, src.height * -src.transform.e])
    origins = np.array(origins)
    split = _block_split(origins, extent)
    stats = BandStatistics(chips.bands, 0)
    for i in np.flatnonzero(split == "train"):
        stats.update(chips.images[i])
    train = dataclasses.replace(chips, stats=stats.result(), splits=split)
    test = split == "test"
    return train, chips.images[test], chips.labels[test]


def _haze_and_season(pre: np.ndarray, post: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Season shift on both dates (NIR × 0.85, red × 1.10) and smooth haze on the post date, in reflectance×1e4."""
    from scipy import ndimage

    season = np.array([1.0, 1.0, 1.10, 0.85], np.float32)[:, None, None]  # B02, B03, B04, B08
    field = ndimage.gaussian_filter(rng.random(post.shape[1:]), 40)
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    haze = (0.02 + 0.08 * field)[None] * np.array([1.0, 0.9, 0.8, 0.5], np.float32)[:, None, None] * 1e4
    out = []
    for img, h in ((pre, 0.0), (post, haze)):
        valid = np.all(np.isfinite(img), axis=0)
        shifted = img * season + h
        out.append(np.where(valid[None], shifted, np.nan).astype(np.float32))
    return out[0], out[1]


def _scene(folder: Path, seed: int, size: int):
    import rasterio
    from landslide_mapper.core.simulate import simulate_event

    ev = simulate_event(folder, width=size, height=size, seed=seed, landslide_density=2.0)
    bands = []
    for path in (ev.pre_s2, ev.post_s2):
        with rasterio.open(path) as src:
            a = src.read().astype(np.float32)
            a[a == 0] = np.nan
            bands.append(a)
    with rasterio.open(ev.labels_raster) as src:
        labels = src.read(1)
    return bands[0], bands[1], labels


def _tiles(image: np.ndarray, labels: np.ndarray, tile: int):
    n = image.shape[-1] // tile
    ims = [image[:, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] for r in range(n) for c in range(n)]
    las = [labels[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] for r in range(n) for c in range(n)]
    return np.stack(ims), np.stack(las)


def simulated_data(out: Path, size: int = 512, tile: int = 128):
    """Train/validation chips from one scene, test tiles from another with haze and a season shift."""
    from landslide_mapper.core.chips import BandStatistics, ChipSet, LabelClass, binary_manifest

    pre, post, labels = _scene(out / "sim_train", 11, size)
    image = np.concatenate([pre, post])
    images, labs = _tiles(image, labels, tile)
    labs = np.where(np.all(np.isfinite(images), axis=1), labs, 255).astype(np.uint8)
    n = size // tile
    split = np.array(["validation" if (k // n) == n - 1 else "train" for k in range(len(images))])
    names = [f"pre_{b}" for b in ("B02", "B03", "B04", "B08")] + [f"post_{b}" for b in ("B02", "B03", "B04", "B08")]
    stats = BandStatistics(names, 0)
    for i in np.flatnonzero(split == "train"):
        stats.update(images[i])
    manifest = binary_manifest({"format": "landslide_mapper.chips", "layout": "native", "bands": names,
                                "tile_size": tile, "crs": None, "pixel_size": [10.0, 10.0]},
                               [LabelClass(1, "landslide", "#e8702a", True)])
    chips = ChipSet(out / "sim_train", manifest, stats.result(), images, labs, split)
    pre_t, post_t, labels_t = _scene(out / "sim_test", 12, size)
    pre_t, post_t = _haze_and_season(pre_t, post_t, np.random.default_rng(12))
    test_images, test_labels = _tiles(np.concatenate([pre_t, post_t]), labels_t, tile)
    test_labels = np.where(np.all(np.isfinite(test_images), axis=1), test_labels, 255).astype(np.uint8)
    return chips, test_images, test_labels


# ---------------------------------------------------------------------------------------------- scoring
def f1_score(prob: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Pooled F1 over labelled pixels (labels 0/1; 255 left out), independent of core.metrics."""
    keep = labels != 255
    pred = prob[keep] >= threshold
    truth = labels[keep] == 1
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def probabilities(nets, images: np.ndarray, mean, std) -> np.ndarray:
    """Mean sigmoid of the networks on whole tiles, normalised like training (nodata → 0)."""
    import torch

    x = (images - mean[None, :, None, None]) / std[None, :, None, None]
    x = torch.from_numpy(np.nan_to_num(x, nan=0.0).astype(np.float32))
    out = np.zeros((len(images),) + images.shape[2:], np.float32)
    with torch.inference_mode():
        for net, w in nets:
            net.eval()
            for s in range(0, len(x), 8):
                out[s:s + 8] += w * torch.sigmoid(net(x[s:s + 8]))[:, 0].numpy()
    return out / sum(w for _, w in nets)


def nearest_valid_fill(images: np.ndarray) -> np.ndarray:
    """NoData pixels (NaN) filled with the nearest valid pixel's values, per tile (a 'reflect the data' treatment)."""
    from scipy import ndimage

    out = images.copy()
    for tile in out:
        hole = ~np.all(np.isfinite(tile), axis=0)
        if hole.any() and not hole.all():
            idx = ndimage.distance_transform_edt(hole, return_distances=False, return_indices=True)
            tile[:] = tile[:, idx[0], idx[1]]
    return out


def nodata_treatments(package_path, test_x, test_y) -> dict:
    """Test F1 of one package with NoData zero-filled after normalisation (as train and predict do) and with NoData
    filled from the nearest valid pixel; NoData pixels are left out of the score either way."""
    from landslide_mapper.models.package import read_package

    package = read_package(package_path)
    mean, std = package.normalization()
    nets = package.members("cpu")
    return {"zero": f1_score(probabilities(nets, test_x, mean, std), test_y, package.threshold),
            "nearest": f1_score(probabilities(nets, nearest_valid_fill(test_x), mean, std), test_y,
                                package.threshold)}


def plugin_run(chips, test_x, test_y, out: Path, seed: int, epochs: int, **changes) -> tuple[float, float]:
    from landslide_mapper.core.training import TrainConfig, train_model
    from landslide_mapper.models.package import read_package

    config = TrainConfig(epochs=epochs, seed=seed, device="cpu", checkpoints=False, model_kwargs=NETWORK, **changes)
    started = time.perf_counter()
    result = train_model(chips, out / f"plugin_{seed}.lmpkg", config)
    seconds = time.perf_counter() - started
    package = read_package(result.package)
    mean, std = package.normalization()
    prob = probabilities(package.members("cpu"), test_x, mean, std)
    return f1_score(prob, test_y, package.threshold), seconds


def reference_run(chips, test_x, test_y, seed: int, epochs: int) -> tuple[float, float]:
    """The hand-written loop (see the module docstring)."""
    import torch
    import torch.nn.functional as F
    from landslide_mapper.models.registry import create_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    stats = {s["name"]: s for s in chips.stats}
    mean = np.array([stats[b]["mean"] for b in chips.bands], np.float32)
    std = np.array([stats[b]["std"] for b in chips.bands], np.float32)
    tx, ty = chips.subset("train")
    vx, vy = chips.subset("validation")
    xt = torch.from_numpy(np.nan_to_num((tx - mean[None, :, None, None]) / std[None, :, None, None], nan=0.0))
    yt = torch.from_numpy((ty == 1).astype(np.float32))[:, None]
    net = create_model("Unet", "resnet18", len(chips.bands), **NETWORK)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    best, best_state, best_threshold = -1.0, None, 0.5
    started = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = rng.permutation(len(xt))
        for s in range(0, len(order), 16):
            idx = order[s:s + 16]
            xb, yb = xt[idx], yt[idx]
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            xb, yb = torch.rot90(xb, k, (2, 3)), torch.rot90(yb, k, (2, 3))
            if flip:
                xb, yb = xb.flip(3), yb.flip(3)
            logits = net(xb)
            p = torch.sigmoid(logits)
            dice = 1 - (2 * (p * yb).sum() + 1) / (p.sum() + yb.sum() + 1)
            loss = F.binary_cross_entropy_with_logits(logits, yb) + dice
            opt.zero_grad()
            loss.backward()
            opt.step()
        prob = probabilities([(net, 1.0)], vx, mean, std)
        for t in np.arange(0.05, 0.96, 0.05):
            f1 = f1_score(prob, vy, t)
            if f1 > best:
                best, best_threshold = f1, float(t)
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
    seconds = time.perf_counter() - started
    net.load_state_dict(best_state)
    return f1_score(probabilities([(net, 1.0)], test_x, mean, std), test_y, best_threshold), seconds


def _spread(values) -> str:
    return f"mean {statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main(out: Path) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("ACCURACY_THREADS", "1")))
    seeds = list(range(int(os.environ.get("ACCURACY_SEEDS", "3"))))
    epochs = int(os.environ.get("ACCURACY_EPOCHS", "12"))
    wanted = os.environ.get("ACCURACY_DATA", "arcgis_s2,simulated_shift").split(",")
    levers = os.environ.get("ACCURACY_LEVERS", "")
    levers = list(LEVERS) if levers == "all" else [x for x in levers.split(",") if x]
    levers_only = os.environ.get("ACCURACY_LEVERS_ONLY") == "1"  # skip the reference loop
    skip_defaults = os.environ.get("ACCURACY_SKIP_DEFAULTS") == "1"  # levers only, compared by hand
    sets = {}
    if "arcgis_s2" in wanted:
        if DATA.exists():
            sets["arcgis_s2"] = real_data()
        else:
            print(f"   accuracy/arcgis_s2 skipped: {DATA} is absent", flush=True)
    if "simulated_shift" in wanted:
        sets["simulated_shift"] = simulated_data(out)
    lines = []
    for name, (chips, test_x, test_y) in sets.items():
        counts = {s: int((chips.splits == s).sum()) for s in ("train", "validation")}
        lines.append(f"accuracy/{name}: {counts['train']} train, {counts['validation']} validation, {len(test_x)} test "
                     f"tiles; test landslide pixels {int((test_y == 1).sum())}; {epochs} epochs, Unet/resnet18 depth 3, cpu")
        print("   " + lines[-1], flush=True)
        plugin, reference = [], []
        for seed in seeds:
            if skip_defaults:
                break
            p, ps = plugin_run(chips, test_x, test_y, out, seed, epochs)
            plugin.append(p)
            if levers_only:
                lines.append(f"accuracy/{name} seed {seed} plugin F1: {p:.3f} ({ps:.0f} s)")
                print("   " + lines[-1], flush=True)
                continue
            fills = nodata_treatments(out / f"plugin_{seed}.lmpkg", test_x, test_y)
            lines.append(f"nodata/{name} seed {seed} plugin F1 with NoData zero-filled: {fills['zero']:.3f}, "
                         f"filled from the nearest valid pixel: {fills['nearest']:.3f}")
            print("   " + lines[-1], flush=True)
            r, rs = reference_run(chips, test_x, test_y, seed, epochs)
            reference.append(r)
            lines.append(f"accuracy/{name} seed {seed} plugin F1: {p:.3f} reference F1: {r:.3f} "
                         f"({ps:.0f} s vs {rs:.0f} s)")
            print("   " + lines[-1], flush=True)
        if reference:
            lines.append(f"accuracy/{name} plugin F1: {_spread(plugin)} reference F1: {_spread(reference)} "
                         f"(over seeds {seeds})")
            print("   " + lines[-1], flush=True)
        for lever in levers:
            scores = []
            for seed in seeds:
                f1, _ = plugin_run(chips, test_x, test_y, out, seed, epochs, **LEVERS[lever])
                scores.append(f1)
            if skip_defaults:
                lines.append(f"lever/{name} {lever} {LEVERS[lever]}: F1 {_spread(scores)} per seed "
                             f"{[round(f, 3) for f in scores]}")
                print("   " + lines[-1], flush=True)
                continue
            deltas = [s - p for s, p in zip(scores, plugin)]
            lines.append(f"lever/{name} {lever} {LEVERS[lever]}: F1 {_spread(scores)}; change vs defaults "
                         f"{_spread(deltas)} per seed {[round(d, 3) for d in deltas]}")
            print("   " + lines[-1], flush=True)
    (out / "accuracy.txt").write_text("\n".join(lines) + "\n")
