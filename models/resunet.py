"""ResUNet with deep supervision (the generalised-CNN study): residual encoder/decoder blocks, and in training an
auxiliary landslide logit from every decoder level, upsampled to the input size, so shallow levels learn too.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """(BN → ReLU → conv3×3) twice, plus a 1×1 projection of the input (pre-activation residual unit)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
        )
        self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.body(x) + self.skip(x)


class ResUNet(nn.Module):
    """Input (N, C, H, W), H and W divisible by 2**(len(filters) − 1); output logits (N, classes, H, W).

    In training mode with deep supervision the output is a tuple (main, aux_1, …), every item full size;
    in eval mode only the main logits, so prediction code treats it like any smp network.
    """

    def __init__(self, in_channels: int, classes: int = 1, filters: Sequence[int] = (32, 64, 128, 256),
                 deep_supervision: bool = True):
        super().__init__()
        filters = [int(f) for f in filters]
        if len(filters) < 2:
            raise ValueError("a ResUNet needs at least two filter levels")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, filters[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(filters[0]), nn.ReLU(inplace=True),
                                  nn.Conv2d(filters[0], filters[0], 3, padding=1))
        self.stem_skip = nn.Conv2d(in_channels, filters[0], 1)
        self.down = nn.ModuleList(ResidualBlock(a, b, stride=2) for a, b in zip(filters[:-1], filters[1:]))
        self.up = nn.ModuleList(ResidualBlock(b + a, a) for a, b in zip(filters[:-1], filters[1:]))
        self.head = nn.Conv2d(filters[0], classes, 1)
        self.deep_supervision = deep_supervision
        # One auxiliary head per coarser decoder level (the finest level is the main head).
        self.aux_heads = nn.ModuleList(nn.Conv2d(f, classes, 1) for f in filters[1:-1]) if deep_supervision else None

    def forward(self, x):
        size = x.shape[-2:]
        skips = [self.stem(x) + self.stem_skip(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        levels = []
        for block, skip in zip(reversed(self.up), reversed(skips)):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
            levels.append(y)
        main = self.head(levels[-1])
        if not (self.training and self.deep_supervision):
            return main
        aux = [F.interpolate(head(level), size=size, mode="bilinear", align_corners=False)
               for head, level in zip(reversed(self.aux_heads), levels[:-1])]
        return (main, *aux)
