"""GIOROM (Viswanath et al. 2024): a reduced-order graph time-stepper for particle dynamics.

The operator advances a sparse subsample of the particles (about 1,000 of a large cloud) one
frame at a time and a kernel integral carries the sparse motion to any number of query points.

Time stepper (:class:`GIOROM`), per frame, on the sparse particles x (P, d) with their last H + 1
positions (H = ``history``, 5 by default) and types:

1. encode: node features = type embedding + the H normalised velocities x_k - x_{k-1};
   edges of the radius graph (``radius``, m) carry (x_i - x_j) / radius and |x_i - x_j| / radius;
2. ``interaction_layers`` interaction-network layers (residual edge and node MLPs);
3. a graph kernel integral (GNO) from the particles onto a latent grid (``latent_grid``^d nodes
   over ``bounds``: 32^2 in 2D, 16^3 in 3D, METHODS.md), a transformer encoder over the grid
   tokens (``attention_layers``, ``heads``, learned position embedding), and a kernel integral back
   from the grid to the particles (radius ``latent_radius``, default 1.5 grid spacings);
4. ``interaction_layers`` more interaction layers, and an MLP decoder to the normalised
   acceleration (a - acc_mean) / acc_std.

``latent_grid=0`` drops step 3: the result is a plain GNS-style interaction network, the
full-graph baseline of ``scripts/bench_giorom.py`` when it runs on every particle.

The next position is x_{t+1} = x_t + v_t + a (semi-implicit Euler in frame units, GNS), with the
GNS velocity / acceleration statistics of the data (per-frame differences, m/frame and
m/frame^2: ``sciops.datasets.particles.gns_metadata``) stored as buffers by
:meth:`GIOROM.set_statistics`. The particle graph sees only relative positions and the layers are
permutation-equivariant; the latent grid is fixed in the box, so (unlike a pure GNS) the stepper
is not exactly translation-equivariant and can learn where the walls are.

Full-order reconstruction (:class:`KernelReconstruction`): the displacement of any query point q
(a particle of the full cloud, or a mesh vertex) from the reference frame is
u(q) = sum_j w_j u_j / sum_j w_j over its ``neighbours`` nearest sparse particles j, with learned
positive weights w_j = softplus(k([(x_j - q) / h_q])) (h_q the distance to the farthest of them).
Normalised weights reproduce any rigid translation exactly, whatever the kernel has learnt.

Neighbour search: scipy cKDTree (``sciops.layers.graph``); message passing: torch ``index_add_``.
GIOROM is not in the grid-operator registry (``sciops.operators.REGISTRY``, channel-first grid
data): ``sciops.kinds`` serves it as the operator of particle data, so ``sciops train giorom``
trains it with ``sciops.particles.trainer`` on a ``particles`` dataset, ``sciops.load`` returns a
``sciops.particles.surrogate.ParticleSurrogate`` and ``sciops evaluate`` runs
``sciops.particles.evaluation``.

Reference: Viswanath, Chang, Berner, Chen, Anandkumar et al. Reduced-order neural operators:
learning Lagrangian dynamics on highly sparse graphs (GIOROM), 2024. Sanchez-Gonzalez et al.
Learning to simulate complex physics with graph networks (GNS), ICML 2020.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sciops.layers.graph import Interaction, KernelIntegral, bipartite_radius_graph, knn_graph, mlp, radius_graph

DEFAULT_GRID = {2: 32, 3: 16}


class GIOROM(nn.Module):
    """Reduced-order graph time-stepper; see the module docstring for the architecture."""

    def __init__(self, dim: int = 2, *, n_types: int = 4, history: int = 5, hidden: int = 64,
                 interaction_layers: int = 2, latent_grid: int | None = None, attention_layers: int = 2,
                 heads: int = 4, radius: float = 0.04, latent_radius: float | None = None, bounds=None,
                 type_embedding: int = 16) -> None:
        super().__init__()
        self.config = dict(dim=dim, n_types=n_types, history=history, hidden=hidden,
                           interaction_layers=interaction_layers, latent_grid=latent_grid,
                           attention_layers=attention_layers, heads=heads, radius=radius, latent_radius=latent_radius,
                           bounds=None if bounds is None else np.asarray(bounds, dtype=float).tolist(),
                           type_embedding=type_embedding)
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        if history < 1 or hidden < 1 or radius <= 0:
            raise ValueError(f"history={history}, hidden={hidden} and radius={radius} must be positive")
        self.dim, self.history, self.radius = dim, int(history), float(radius)
        b = np.asarray([[0.0, 1.0]] * dim if bounds is None else bounds, dtype=np.float64)
        if b.shape != (dim, 2) or not (b[:, 1] > b[:, 0]).all():
            raise ValueError(f"bounds must be [[lo, hi]] for {dim} axes with lo < hi, got {b.tolist()}")
        self.grid_size = DEFAULT_GRID[dim] if latent_grid is None else int(latent_grid)
        if self.grid_size == 1 or self.grid_size < 0:
            raise ValueError(f"latent_grid must be 0 (no latent grid) or >= 2, got {latent_grid!r}")
        axes = [np.linspace(lo, hi, self.grid_size) for lo, hi in b]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim) if self.grid_size else np.zeros((0, dim))
        spacing = float(np.max((b[:, 1] - b[:, 0]) / max(self.grid_size - 1, 1)))
        self.latent_radius = 1.5 * spacing if latent_radius is None else float(latent_radius)
        self.register_buffer("grid", torch.tensor(grid, dtype=torch.float32))
        for name in ("vel_mean", "acc_mean"):
            self.register_buffer(name, torch.zeros(dim))
        for name in ("vel_std", "acc_std"):
            self.register_buffer(name, torch.ones(dim))
        self.types = nn.Embedding(n_types, type_embedding)
        self.node_encoder = mlp(type_embedding + history * dim, hidden, hidden)
        self.edge_encoder = mlp(dim + 1, hidden, hidden)
        self.before = nn.ModuleList(Interaction(hidden) for _ in range(interaction_layers))
        self.to_grid = KernelIntegral(hidden, hidden, hidden, dim)
        self.position = nn.Parameter(0.02 * torch.randn(len(grid), hidden))
        layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True, norm_first=True)
        self.attention = nn.TransformerEncoder(layer, attention_layers, enable_nested_tensor=False)
        self.from_grid = KernelIntegral(hidden, hidden, hidden, dim)
        self.after = nn.ModuleList(Interaction(hidden) for _ in range(interaction_layers))
        self.decoder = mlp(hidden, hidden, dim, norm=False)

    def set_statistics(self, vel_mean, vel_std, acc_mean, acc_std) -> None:
        """Store the data's per-frame velocity and acceleration statistics (each (dim,))."""
        for name, value in zip(("vel_mean", "vel_std", "acc_mean", "acc_std"), (vel_mean, vel_std, acc_mean, acc_std)):
            t = torch.as_tensor(np.asarray(value, dtype=np.float32)).to(self.vel_mean.device)
            if t.shape != (self.dim,):
                raise ValueError(f"{name} must have {self.dim} components, got shape {tuple(t.shape)}")
            if name.endswith("std"):
                t = t.clamp_min(1e-12)
            getattr(self, name).copy_(t)

    def forward(self, positions: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """Normalised acceleration (P, d) from the last H + 1 positions (P, H + 1, d) and types (P,)."""
        if positions.ndim != 3 or positions.shape[1] != self.history + 1 or positions.shape[2] != self.dim:
            raise ValueError(f"positions must be (P, {self.history + 1}, {self.dim}), got {tuple(positions.shape)}")
        x = positions[:, -1]
        vel = (positions[:, 1:] - positions[:, :-1] - self.vel_mean) / self.vel_std
        h = self.node_encoder(torch.cat([self.types(types.long()), vel.reshape(len(x), -1)], -1))
        src, dst = radius_graph(x, self.radius)
        rel = (x.index_select(0, dst) - x.index_select(0, src)) / self.radius
        e = self.edge_encoder(torch.cat([rel, rel.norm(dim=-1, keepdim=True)], -1))
        for layer in self.before:
            h, e = layer(h, e, src, dst)
        if self.grid_size:
            grid = self.grid.to(x.dtype)
            near, cell = bipartite_radius_graph(x, grid, self.latent_radius)  # particle -> grid node
            z = self.to_grid(h, x, grid, near, cell, self.latent_radius) + self.position.to(x.dtype)
            z = self.attention(z[None])[0]
            # the grid -> particle graph is the same set of pairs, reversed: no second neighbour search
            h = h + self.from_grid(z, grid, x, cell, near, self.latent_radius)
        for layer in self.after:
            h, e = layer(h, e, src, dst)
        return self.decoder(h)

    def next_position(self, positions: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """x_{t+1} = x_t + v_t + a for positions (P, H + 1, d)."""
        acc = self(positions, types) * self.acc_std + self.acc_mean
        return 2 * positions[:, -1] - positions[:, -2] + acc

    @torch.no_grad()
    def rollout(self, positions: torch.Tensor, types: torch.Tensor, steps: int) -> torch.Tensor:
        """Autoregressive rollout: the next ``steps`` positions (steps, P, d) after the window."""
        window = positions
        out = []
        for _ in range(int(steps)):
            nxt = self.next_position(window, types)
            out.append(nxt)
            window = torch.cat([window[:, 1:], nxt[:, None]], 1)
        return torch.stack(out)


class KernelReconstruction(nn.Module):
    """Learned kernel interpolation of sparse displacements to query points (module docstring)."""

    def __init__(self, dim: int = 2, *, hidden: int = 32, neighbours: int = 8) -> None:
        super().__init__()
        self.config = dict(dim=dim, hidden=int(hidden), neighbours=int(neighbours))
        self.dim, self.hidden, self.neighbours = dim, int(hidden), int(neighbours)
        self.kernel = mlp(dim, hidden, 1, norm=False)

    def forward(self, sparse_reference: torch.Tensor, sparse_displacement: torch.Tensor,
                query_reference: torch.Tensor) -> torch.Tensor:
        """Displacements (..., Q, d) of query points (Q, d) from the sparse particles' reference
        positions (S, d) and displacements (..., S, d) (leading dims: e.g. the frames of a rollout)."""
        src, dst = knn_graph(sparse_reference, query_reference, self.neighbours)
        rel = sparse_reference.index_select(0, src) - query_reference.index_select(0, dst)
        k = src.numel() // len(query_reference)
        dist = rel.norm(dim=-1).view(-1, k)
        scale = dist.max(1, keepdim=True).values.clamp_min(1e-12)
        w = F.softplus(self.kernel(rel.view(-1, k, self.dim) / scale[..., None])).squeeze(-1) + 1e-12  # (Q, k)
        w = w / w.sum(1, keepdim=True)
        neighbours = sparse_displacement.index_select(-2, src).reshape(sparse_displacement.shape[:-2] + (-1, k, self.dim))
        return (w[..., None] * neighbours).sum(-2)


def subsample(n_points: int, n_sparse: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n_sparse`` of ``n_points`` particles drawn without replacement."""
    if not 1 <= n_sparse <= n_points:
        raise ValueError(f"n_sparse={n_sparse} must be in [1, {n_points}]")
    return np.sort(rng.choice(n_points, n_sparse, replace=False))
