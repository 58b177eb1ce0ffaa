"""Graph layers for particle operators: neighbour search, MLPs, message passing, kernel integrals.

Conventions: point sets are (N, d) tensors; an edge list is ``(src, dst)``, two int64 tensors of
length E on the points' device, and messages flow src -> dst. Aggregation is a sum or a mean over
incoming edges with ``index_add_`` (native torch scatter; no torch-geometric needed). Features are
gathered per edge with ``index_select``, not ``h[src]``: the backward of advanced indexing
accumulates in a thread-dependent order on CPU, so training with several threads was not
reproducible run to run; ``index_select``'s backward (``index_add_``) is.

Neighbour search uses scipy's cKDTree on CPU copies of the (detached) positions: graphs are
built outside autograd, which is how GNS-style simulators use them (the graph of the current
positions is a constant of the step).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn


def _edges(src: np.ndarray, dst: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(src, dtype=torch.long, device=device),
            torch.as_tensor(dst, dtype=torch.long, device=device))


def radius_graph(x: torch.Tensor, radius: float, *, self_loops: bool = False):
    """Edges (src, dst) between points of x (N, d) closer than ``radius``, both directions."""
    pairs = cKDTree(x.detach().cpu().numpy()).query_pairs(float(radius), output_type="ndarray")
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    if self_loops:
        n = np.arange(len(x))
        src, dst = np.concatenate([src, n]), np.concatenate([dst, n])
    return _edges(src, dst, x.device)


def bipartite_radius_graph(source: torch.Tensor, target: torch.Tensor, radius: float):
    """Edges (src index into source, dst index into target) for pairs closer than ``radius``."""
    tree = cKDTree(source.detach().cpu().numpy())
    lists = tree.query_ball_point(target.detach().cpu().numpy(), float(radius))
    counts = np.fromiter((len(n) for n in lists), dtype=np.int64, count=len(lists))
    src = np.fromiter((j for n in lists for j in n), dtype=np.int64, count=int(counts.sum()))
    dst = np.repeat(np.arange(len(lists)), counts)
    return _edges(src, dst, source.device)


def knn_graph(source: torch.Tensor, target: torch.Tensor, k: int):
    """Edges from the k nearest source points to every target point (dst index into target)."""
    k = min(int(k), len(source))
    _, idx = cKDTree(source.detach().cpu().numpy()).query(target.detach().cpu().numpy(), k=k)
    idx = np.asarray(idx).reshape(len(target), k)
    return _edges(idx.reshape(-1), np.repeat(np.arange(len(target)), k), source.device)


def mlp(inputs: int, hidden: int, outputs: int, layers: int = 2, norm: bool = True) -> nn.Sequential:
    """``layers`` linear layers with SiLU between them, optionally LayerNorm on the output (GNS)."""
    mods: list[nn.Module] = []
    width = inputs
    for _ in range(layers - 1):
        mods += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    mods.append(nn.Linear(width, outputs))
    if norm:
        mods.append(nn.LayerNorm(outputs))
    return nn.Sequential(*mods)


def aggregate(messages: torch.Tensor, dst: torch.Tensor, n: int, mean: bool = False) -> torch.Tensor:
    """Sum (or mean) of edge messages (E, C) at their destinations -> (n, C)."""
    out = torch.zeros(n, messages.shape[1], dtype=messages.dtype, device=messages.device)
    out.index_add_(0, dst, messages)
    if mean:
        count = torch.zeros(n, dtype=messages.dtype, device=messages.device)
        count.index_add_(0, dst, torch.ones_like(dst, dtype=messages.dtype))
        out = out / count.clamp_min(1)[:, None]
    return out


class Interaction(nn.Module):
    """One interaction-network layer (Battaglia et al. 2016; GNS): residual edge and node updates
    e' = e + f_e([e, h_src, h_dst]), h' = h + f_v([h, sum_in e'])."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.edge = mlp(3 * hidden, hidden, hidden)
        self.node = mlp(2 * hidden, hidden, hidden)

    def forward(self, h, e, src, dst):
        e = e + self.edge(torch.cat([e, h.index_select(0, src), h.index_select(0, dst)], -1))
        return h + self.node(torch.cat([h, aggregate(e, dst, len(h))], -1)), e


class KernelIntegral(nn.Module):
    """Graph kernel integral (GNO, Li et al. 2020) between point sets: at each target point y,
    the mean over source points x within the graph of k([f(x), (x - y) / scale]), an MLP."""

    def __init__(self, in_features: int, hidden: int, out_features: int, dim: int) -> None:
        super().__init__()
        self.kernel = mlp(in_features + dim, hidden, out_features)

    def forward(self, features, source, target, src, dst, scale: float):
        rel = (source.index_select(0, src) - target.index_select(0, dst)) / scale
        return aggregate(self.kernel(torch.cat([features.index_select(0, src), rel], -1)), dst, len(target), mean=True)
