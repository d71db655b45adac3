"""Decision trees (CART / Random Forest) as plain tensors, evaluated per pixel by a torch module.

scikit-learn fits the trees (core/baseline.py); their node arrays are exported to safetensors (never pickle), and
`PixelForest` evaluates them on every pixel's band vector. It takes (N, C, H, W) normalised tiles and returns
landslide logits (N, 1, H, W), so the prediction code runs it exactly like a segmentation network.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..common.errors import InputError

FOREST_ARCHITECTURES = ["RandomForest", "CART"]
_ARRAYS = ("left", "right", "feature", "threshold", "value", "roots")
_CHUNK = 1 << 16  # pixels per traversal pass: bounds the (pixels × trees) index arrays
MAX_DEPTH = 1024  # deepest tree accepted from a package (scikit-learn trees on pixel data stay far below)


class PixelForest(nn.Module):
    """All trees in one flat node table; leaves point to themselves so a fixed number of steps reaches them."""

    def __init__(self, left, right, feature, threshold, value, roots, depth: int):
        super().__init__()
        self.register_buffer("left", torch.as_tensor(left, dtype=torch.int64))
        self.register_buffer("right", torch.as_tensor(right, dtype=torch.int64))
        self.register_buffer("feature", torch.as_tensor(feature, dtype=torch.int64))
        # float64 like scikit-learn's thresholds, so a pixel takes the same branch as in scikit-learn.
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float64))
        self.register_buffer("value", torch.as_tensor(value, dtype=torch.float32))
        self.register_buffer("roots", torch.as_tensor(roots, dtype=torch.int64))
        self.register_buffer("depth", torch.tensor(int(depth), dtype=torch.int64))

    @classmethod
    def from_sklearn(cls, estimators) -> "PixelForest":
        """Node tables of fitted scikit-learn DecisionTreeClassifiers (class 1 = landslide)."""
        parts = {k: [] for k in _ARRAYS}
        offset, depth = 0, 0
        for est in estimators:
            tree = est.tree_
            n = tree.node_count
            nodes = np.arange(n)
            leaf = tree.children_left < 0
            parts["left"].append(np.where(leaf, nodes, tree.children_left) + offset)
            parts["right"].append(np.where(leaf, nodes, tree.children_right) + offset)
            parts["feature"].append(np.where(leaf, 0, tree.feature))
            parts["threshold"].append(np.where(leaf, 0.0, tree.threshold))
            counts = tree.value[:, 0, :]
            classes = list(est.classes_)
            pos = counts[:, classes.index(1)] if 1 in classes else np.zeros(n)
            parts["value"].append(pos / np.maximum(counts.sum(axis=1), 1e-12))
            parts["roots"].append(np.array([offset]))
            offset += n
            depth = max(depth, int(tree.max_depth))
        return cls(*(np.concatenate(parts[k]) for k in _ARRAYS), depth=depth)

    @classmethod
    def from_state(cls, state: dict, in_channels: int, source: str) -> "PixelForest":
        """Rebuild from a safetensors state, checking every index so bad files are refused, not crashed on."""
        missing = [k for k in (*_ARRAYS, "depth") if k not in state]
        if missing:
            raise InputError(f"Tree weights '{source}' lack {', '.join(missing)}.")
        if any(state[k].dim() != 1 for k in _ARRAYS) or state["depth"].numel() != 1:
            raise InputError(f"Tree weights '{source}' are not flat node arrays with one depth value.")
        integer = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
        if any(state[k].dtype not in integer for k in ("left", "right", "feature", "roots", "depth")) or any(
                not state[k].is_floating_point() for k in ("threshold", "value")):
            raise InputError(f"Tree weights '{source}' have node arrays of the wrong type (indexes must be integers, "
                             f"thresholds and leaf values numbers).")
        n = state["left"].numel()
        if any(state[k].numel() != n for k in ("right", "feature", "threshold", "value")) or n == 0:
            raise InputError(f"Tree weights '{source}' have node arrays of different lengths.")
        if state["roots"].numel() == 0:
            raise InputError(f"Tree weights '{source}' hold no tree.")
        depth = int(state["depth"].reshape(()))
        if not 0 <= depth <= min(n, MAX_DEPTH):  # every pixel walks `depth` steps: bound the work
            raise InputError(f"Tree weights '{source}' claim a depth of {depth}; at most {min(n, MAX_DEPTH)} "
                             f"is possible here.")
        if not bool(torch.isfinite(state["threshold"]).all()):
            raise InputError(f"Tree weights '{source}' have split thresholds that are not finite numbers.")
        value = state["value"]
        if not bool((torch.isfinite(value) & (value >= 0) & (value <= 1)).all()):
            raise InputError(f"Tree weights '{source}' have leaf values outside 0–1 (they are probabilities).")
        for k in ("left", "right", "roots"):
            if state[k].numel() and (int(state[k].min()) < 0 or int(state[k].max()) >= n):
                raise InputError(f"Tree weights '{source}' point to nodes that do not exist.")
        if int(state["feature"].min()) < 0 or int(state["feature"].max()) >= in_channels:
            raise InputError(f"Tree weights '{source}' use band numbers beyond the {in_channels} input bands.")
        return cls(*(state[k] for k in _ARRAYS), depth=depth)

    @property
    def n_trees(self) -> int:
        return int(self.roots.numel())

    def _traverse(self, x: torch.Tensor) -> torch.Tensor:
        """(P, C) float64 band vectors → (P,) mean leaf value: every tree walked `depth` steps at once."""
        node = self.roots.expand(x.shape[0], -1)
        for _ in range(int(self.depth)):
            go_left = torch.gather(x, 1, self.feature[node]) <= self.threshold[node]
            node = torch.where(go_left, self.left[node], self.right[node])
        return self.value[node].mean(dim=1)

    def probability(self, pixels: torch.Tensor) -> torch.Tensor:
        """(P, C) band vectors → (P,) mean landslide probability over the trees."""
        x = pixels.double()
        if torch.jit.is_tracing():  # ONNX export: one graph for any number of pixels (no shape-bound loop)
            return self._traverse(x).float()
        out = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
        for s in range(0, x.shape[0], _CHUNK):
            out[s:s + _CHUNK] = self._traverse(x[s:s + _CHUNK])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.probability(x.float().permute(0, 2, 3, 1).reshape(-1, c))
        p = p.clamp(1e-6, 1 - 1e-6)
        return torch.log(p / (1 - p)).reshape(n, 1, h, w)
