"""Training-step throughput: our loop's step vs a bare segmentation-models-pytorch loop on identical tensors.

Ours = what `train_model` does per batch: crop sampling (positive-biased), gathering, rotation/flip augmentation,
transfer, masked loss, mixed precision on CUDA (`train_step`). Bare = `model(x); loss; backward; step` on batches
already made. Both start from the same weights; steps alternate one by one and the median step time counts, so
load from other processes hits both alike. Target: ≥ 0.9.
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

BANDS, TILE, BATCH = 15, 128, 4  # the global study's 15 bands; its batch of 4
CHIPS, PAIRS = 16, 15


def main(out: Path) -> None:
    import torch
    import torch.nn.functional as F

    from landslide_mapper.models.devices import grad_scaler, pick_device
    from landslide_mapper.core.training import (CropSampler, augment_batch, gather_batch,
                                                train_step)
    from landslide_mapper.models.registry import create_model, get_loss

    out.mkdir(parents=True, exist_ok=True)
    device = pick_device("auto")
    torch.manual_seed(0)
    x = torch.randn(CHIPS, BANDS, TILE, TILE)
    y = (torch.rand(CHIPS, 1, TILE, TILE) > 0.9).float()
    v = torch.ones_like(y)
    net = create_model("Unet", "resnet18", BANDS)
    ours_net, bare_net = copy.deepcopy(net).to(device).train(), copy.deepcopy(net).to(device).train()
    ours_opt = torch.optim.Adam(ours_net.parameters(), lr=1e-3)
    bare_opt = torch.optim.Adam(bare_net.parameters(), lr=1e-3)
    loss_fn, scaler = get_loss("bce"), grad_scaler(device)
    generator = torch.Generator().manual_seed(0)
    sampler = CropSampler(y, TILE, BATCH, 0.5, generator)
    batches = [(x[i:i + BATCH].to(device), y[i:i + BATCH].to(device)) for i in range(0, CHIPS, BATCH)]

    def ours_step(k):
        idx, rows, cols = sampler.next_batch()
        xb, yb, vb = augment_batch(*gather_batch(x, y, v, idx, rows, cols, TILE), generator)
        xb, yb, vb = (t.to(device, non_blocking=True) for t in (xb, yb, vb))
        return train_step(ours_net, ours_opt, loss_fn, xb, yb, vb, scaler)

    def bare_step(k):
        xb, yb = batches[k % len(batches)]
        logits = bare_net(xb)
        loss = F.binary_cross_entropy_with_logits(logits, yb)
        bare_opt.zero_grad()
        loss.backward()
        bare_opt.step()
        return loss.detach()

    def timed(step, k):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        float(step(k))  # float() waits for the device
        return time.perf_counter() - started

    for k in range(2):  # warm-up: kernels, allocator, optimizer state
        timed(ours_step, k), timed(bare_step, k)
    ours, bare = [], []
    for k in range(PAIRS):  # alternate which goes first, so neither always follows the other
        if k % 2:
            bare.append(timed(bare_step, k))
            ours.append(timed(ours_step, k))
        else:
            ours.append(timed(ours_step, k))
            bare.append(timed(bare_step, k))
    px = BATCH * TILE * TILE
    ours_rate, bare_rate = px / statistics.median(ours), px / statistics.median(bare)
    ratio = ours_rate / bare_rate
    lines = [f"training step on {device.type}: Unet/resnet18, {BANDS} bands, batch {BATCH} × {TILE}² px",
             f"ours (sampling + augmentation + masked loss): {ours_rate:,.0f} px/s "
             f"({statistics.median(ours) * 1000:.0f} ms/step)",
             f"bare smp loop: {bare_rate:,.0f} px/s ({statistics.median(bare) * 1000:.0f} ms/step)",
             f"training/reference ratio: {ratio:.2f} (target ≥ 0.9)"]
    for line in lines:
        print("   " + line, flush=True)
    (out / "training.txt").write_text("\n".join(lines) + "\n")
