"""DGNO / DGenNO (Zang & Koutsourelakis 2025): a latent-variable neural operator for Darcy flow
trained from unlabeled coefficient samples by weak-form physics.

Model
    encoder     a (B, ny, nx) -> beta (B, m): a CNN on the coefficient resampled (bilinear, vertex
                grid) to ``encoder_resolution`` nodes per side; for the generative version a mean
                and a log-variance, beta = mean + exp(logvar / 2) eps in training, the mean at
                inference, prior p(beta) = N(0, I).
    decoders    MultiONets (``sciops.layers.multionet``) evaluated at points x in [0,1]^2:
                u(x; beta)  = u_ref sin(pi x) sin(pi y) U(x; beta)       (hard u = 0 on the boundary)
                s(x; beta)  = s_ref S(x; beta)                           (flux a grad u, 2 channels)
                a(x; beta)  = a_low + (a_high - a_low) sigmoid(A(x; beta)) (two-phase media)
                            = exp(A(x; beta))                            (lognormal media)
                with the reference scales of -div(a grad u) = f on the unit square, s_ref = f / 4
                (the RMS flux of the 1D problem is f / (2 sqrt 3)) and u_ref = f / (8 a_ref) (the
                1D maximum), f the forcing and a_ref = (a_low + a_high) / 2 (1 for lognormal
                media): the networks U, S, A work on O(1) values, so the operator carries its own
                scale and needs no label statistics.
    forward     ``forward(a)`` (B, 1, ny, nx) -> u (B, 1, ny, nx): encode, then the u decoder at the
                vertex-grid nodes of the input, so a Surrogate serves any resolution.

Label-free loss (``training_loss``), per batch (the points are shared by the batch)
    L = pde_weight   * mean_j [ (r1_j / f)^2 + c |r2_j / s_ref|^2 ]    weak-form residuals of
                                                                          sciops.physics.weak_form
      + data_weight  * BCE(A(x_p; beta), phase(a(x_p)))  (MSE of log a for lognormal media)
      + kl_weight    * KL(N(mean, exp(logvar)) || N(0, I))               (generative only)
      + supervised_weight * relative L2 of u on the grid                  (only when labels are used)
    where c is ``constitutive_weight`` and r2 tests the constitutive law in the form
    ``constitutive_form``: "resistivity" (default: a_ref (s / a - grad u), the classical mixed
    method's form), "energy" ((a_ref / a)^(1/2) (s - a grad u)) or "flux" (s - a grad u); see
    ``sciops.physics.weak_form.constitutive_test_weight`` for why (the flux form biases u low at the
    same budget in development runs; figures in docs/benchmarks/darcy-operators.md). Terms with
    weight 0 are not computed: pde_weight =
    data_weight = kl_weight = 0 with supervised_weight > 0 and ``generative=False`` is the
    supervised MultiONet of the paper (the DGNO architecture trained on labels).
    With ``centres`` Wendland test functions at random centres (radii in [rbf_radius_min,
    rbf_radius_max], supports inside the square), a polar ``quad_radial`` x ``quad_angular`` rule on
    each (the default 4 x 8 integrates phi exactly; 6 x 12 doubles the cost of a step), and
    ``data_points`` random points for the coefficient reconstruction. The true a enters
    the residuals by lookup on the data grid, as the reference solver saw it: piecewise constant on
    the coarse cells for the multi-phase medium solved on a finer grid (``subsample`` > 1, when the
    stored grid resolves the cells), else nearest node (the 5-point stencil's half-cell medium).
    grad u comes from forward-mode differentiation of the u trunk with respect to the coordinates
    (chain rule through the layers with the activations' slopes; first derivatives only, no second
    derivatives; checked against reverse-mode autograd in the tests). The encoder's posterior std
    starts at ``init_posterior_std`` (a prior-sized std at initialisation drowns the code in noise).
    All randomness (centres, points, reparameterisation noise) is drawn from a generator seeded by
    (seed, step) with the step counter a buffer, so training and resume are deterministic.

Physics settings (a_low, a_high, forcing, phase cells) are taken from the Problem by
``configure(problem)`` (called by ``training_loss``) and stored as a buffer with the weights.

Class attribute ``uses_labels``: False unless ``supervised_weight > 0``; the trainer then passes
no labels to ``training_loss`` and uses identity output normalisation.

Shapes: point sets (N, 2) in (x, y) order, shared by a batch; point values (B, N) or (B, N, 2);
grids (B, [1,] y, x) on the vertex grid x_j = j / (n - 1).

Reference: Y. Zang, P.-S. Koutsourelakis, "DGenNO: a novel physics-aware neural operator for
solving forward and inverse PDE problems based on deep, generative probabilistic modeling",
arXiv:2502.06250 (2025).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sciops.layers.multionet import ACTIVATIONS, MultiONet
from sciops.operators.base import Operator
from sciops.physics.weak_form import (
    CONSTITUTIVE_FORMS,
    coefficient_at,
    constitutive_test_weight,
    darcy_residuals,
    node_of_cell,
    sample_wendland_set,
)

TWO_PHASE = ("fno", "multiphase")


def grid_points(ny: int, nx: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Vertex-grid nodes as points (ny * nx, 2) in (x, y) order, row-major over (y, x)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, ny, device=device, dtype=dtype),
                            torch.linspace(0, 1, nx, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)


class ConvEncoder(nn.Module):
    """(B, 1, R, R) -> (B, out_features): a 3x3 convolution, three stride-2 convolutions, a linear map."""

    def __init__(self, resolution: int, channels: int, out_features: int):
        super().__init__()
        c = channels
        self.convs = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten())
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, 1, resolution, resolution)).shape[1]
        self.head = nn.Linear(flat, out_features)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(a))


@dataclass
class Basis:
    """Decoder trunk features at a point set (see ``DGNO.basis``): reusable for any beta."""

    points: torch.Tensor
    u: list | None = None
    u_grad: list | None = None  # x- and y-derivatives of the u trunk features, K tensors (2, C, N, H)
    s: list | None = None
    a: list | None = None


class DGNO(Operator):
    """Args (all JSON values; see the module docstring):
        latent: dimension of beta. generative: encode a distribution (mean, log-variance) or a point.
        width, layers, inner, activation: the MultiONet decoders (hidden width, hidden layers,
            number of summed inner products, activation name).
        encoder_resolution, encoder_channels: the CNN encoder's input grid and base channels.
        centres, rbf_radius_min, rbf_radius_max, quad_radial, quad_angular: weak-form test functions.
        data_points: random points of the coefficient reconstruction term per batch.
        init_posterior_std: initial std of the encoder posterior (generative version).
        pde_weight, data_weight, kl_weight, supervised_weight: loss weights.
        constitutive_weight: c, the weight of the constitutive residual relative to the balance one.
        seed: seed of the training randomness (centres, points, reparameterisation).
    """

    own_loss = True
    uses_labels = False

    def __init__(self, in_channels: int = 1, out_channels: int = 1, *, ndim: int = 2, geometry: str = "bounded",
                 latent: int = 128, generative: bool = True, width: int = 100, layers: int = 5, inner: int = 4,
                 activation: str = "tanh_sin", encoder_resolution: int = 29, encoder_channels: int = 32,
                 centres: int = 100, rbf_radius_min: float = 0.02, rbf_radius_max: float = 0.08,
                 quad_radial: int = 4, quad_angular: int = 8, data_points: int = 1024,
                 pde_weight: float = 1.0, data_weight: float = 1.0, kl_weight: float = 1e-4,
                 supervised_weight: float = 0.0, constitutive_weight: float = 1.0,
                 constitutive_form: str = "resistivity",
                 init_posterior_std: float = 0.01, seed: int = 0):
        super().__init__()
        if (in_channels, out_channels, ndim, geometry) != (1, 1, 2, "bounded"):
            raise ValueError("DGNO is written for 2D Darcy flow: one input field a and one output field u on a "
                             f"bounded 2D grid; got in_channels={in_channels}, out_channels={out_channels}, "
                             f"ndim={ndim}, geometry={geometry!r}")
        checks = [
            (latent >= 1, f"latent must be >= 1, got {latent}"),
            (activation in ACTIVATIONS, f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"),
            (encoder_resolution >= 8, f"encoder_resolution must be >= 8, got {encoder_resolution}"),
            (encoder_channels >= 1, f"encoder_channels must be >= 1, got {encoder_channels}"),
            (centres >= 1 and data_points >= 1, "centres and data_points must be >= 1"),
            (0 < rbf_radius_min <= rbf_radius_max < 0.5,
             f"need 0 < rbf_radius_min <= rbf_radius_max < 0.5, got {rbf_radius_min}, {rbf_radius_max}"),
            (quad_radial >= 2 and quad_angular >= 3, "need quad_radial >= 2 and quad_angular >= 3"),
            (min(pde_weight, data_weight, kl_weight, supervised_weight, constitutive_weight) >= 0,
             "loss weights must be >= 0"),
            (init_posterior_std > 0, f"init_posterior_std must be > 0, got {init_posterior_std}"),
            (constitutive_form in CONSTITUTIVE_FORMS,
             f"constitutive_form must be one of {', '.join(CONSTITUTIVE_FORMS)}, got {constitutive_form!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DGNO: {message}")
        self.latent, self.generative = latent, bool(generative)
        self.encoder_resolution = encoder_resolution
        self.centres, self.rbf_radius = centres, (rbf_radius_min, rbf_radius_max)
        self.quadrature = (quad_radial, quad_angular)
        self.data_points = data_points
        self.loss_weights = dict(pde=pde_weight, data=data_weight, kl=kl_weight, supervised=supervised_weight,
                                 constitutive=constitutive_weight)
        self.seed = seed
        self.constitutive_form = constitutive_form
        self.uses_labels = supervised_weight > 0
        self.encoder = ConvEncoder(encoder_resolution, encoder_channels, latent * (2 if self.generative else 1))
        if self.generative:  # start from a narrow posterior: prior-sized noise would drown the code
            with torch.no_grad():
                self.encoder.head.weight[latent:].mul_(0.01)
                self.encoder.head.bias[latent:].fill_(2.0 * math.log(init_posterior_std))
        net = dict(width=width, layers=layers, inner=inner, activation=activation)
        self.u_net = MultiONet(2, latent, 1, **net)
        self.s_net = MultiONet(2, latent, 2, **net)
        self.a_net = MultiONet(2, latent, 1, **net)
        # [a_low, a_high, forcing, phase cells]; NaN until configure(); a_low NaN = lognormal medium
        self.register_buffer("physics", torch.full((4,), float("nan"), dtype=torch.float64))
        self._physics = (math.nan,) * 4  # the buffer as Python floats, read under torch.export (``_value``)
        self.register_buffer("rng_step", torch.zeros((), dtype=torch.long))
        self.last_terms: dict[str, float] = {}

    # --- physics settings ----------------------------------------------------------------------
    def configure(self, problem) -> None:
        """Take a_low, a_high, forcing and the phase cells from a darcy Problem."""
        if getattr(problem, "name", None) != "darcy":
            name = getattr(problem, "name", problem)
            raise ValueError(f"DGNO's physics loss is written for the darcy problem, not {name!r}")
        p = problem.params
        two_phase = p["coefficient"] in TWO_PHASE
        # the medium the reference solver saw: exact coarse cells when it solved on a finer grid,
        # else the stored nodes with their half-cells (the 5-point stencil's view)
        cells = p["phase_cells"] if p["coefficient"] == "multiphase" and p.get("subsample", 1) > 1 else 0
        values = torch.tensor([p["a_low"] if two_phase else math.nan, p["a_high"] if two_phase else math.nan,
                               p["forcing"], cells], dtype=torch.float64)
        if self.configured and not torch.allclose(self.physics.cpu(), values, equal_nan=True):
            raise ValueError(f"this DGNO was set up for (a_low, a_high, forcing, cells) = {self.physics.tolist()}, "
                             f"not {values.tolist()}")
        self.physics.copy_(values)
        self._sync_physics()

    def _sync_physics(self) -> None:
        """Mirror the ``physics`` buffer as Python floats (after configure and load_state_dict), for torch.export."""
        self._physics = tuple(float(v) for v in self.physics.detach().cpu())

    def _value(self, i: int) -> float:
        """physics[i]: from the buffer, or under torch.export (where buffers hold no values and a branch on
        them cannot be traced) from its mirror of the last configure or load_state_dict."""
        if torch.compiler.is_exporting():
            return self._physics[i]
        return float(self.physics[i])

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._sync_physics()

    @property
    def configured(self) -> bool:
        return not math.isnan(self._value(2))

    def _require_configured(self) -> None:
        if not self.configured:
            raise ValueError("DGNO has no physics settings yet: train it or call configure(problem) first")

    @property
    def two_phase(self) -> bool:
        return not math.isnan(self._value(0))

    @property
    def forcing(self) -> float:
        return self._value(2)

    @property
    def a_ref(self) -> float:
        return 0.5 * (self._value(0) + self._value(1)) if self.two_phase else 1.0

    @property
    def u_ref(self) -> float:
        return self.forcing / (8.0 * self.a_ref)

    @property
    def s_ref(self) -> float:
        return self.forcing / 4.0

    def cells_for(self, nodes: int) -> int | None:
        """Coefficient lookup on a grid of ``nodes`` per side: phase cells if resolved, else None (nearest node)."""
        cells = int(self._value(3))
        if cells <= 0:
            return None
        try:
            node_of_cell(nodes, cells)
        except ValueError:
            return None
        return cells

    # --- encoder -------------------------------------------------------------------------------
    def _scaled_input(self, a: torch.Tensor) -> torch.Tensor:
        if self.two_phase:
            lo, hi = self._value(0), self._value(1)
            return (2.0 * a - (lo + hi)) / (hi - lo)
        return torch.log(a.clamp_min(1e-12))

    def encode(self, a_grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """a (B, [1,] ny, nx) -> (mean (B, m), log-variance (B, m) or None if not generative)."""
        self._require_configured()
        a = a_grid if a_grid.dim() == 4 else a_grid.unsqueeze(1)
        if a.dim() != 4 or a.shape[1] != 1:
            raise ValueError(f"DGNO.encode expects a of shape (B, 1, ny, nx) or (B, ny, nx), got {tuple(a_grid.shape)}")
        z = self._scaled_input(a)
        if z.shape[-2:] != (self.encoder_resolution,) * 2:
            z = F.interpolate(z, size=(self.encoder_resolution,) * 2, mode="bilinear", align_corners=True)
        h = self.encoder(z)
        if self.generative:
            mean, logvar = h.chunk(2, dim=1)
            return mean, logvar.clamp(-20.0, 10.0)
        return h, None

    # --- decoders ------------------------------------------------------------------------------
    def basis(self, points: torch.Tensor, *, u: bool = True, grad: bool = False, s: bool = False,
              a: bool = False) -> Basis:
        """Trunk features of the requested decoders at points (N, 2); ``grad`` adds d/dx, d/dy of the
        u trunk by forward-mode differentiation. Independent of beta: compute once, use for many betas."""
        z = 2.0 * points - 1.0  # trunk coordinates in [-1, 1]^2
        out = Basis(points)
        if u:
            if grad:
                out.u, out.u_grad = self.u_net.trunk_with_derivatives(z, scale=2.0)
            else:
                out.u = self.u_net.trunk(z)
        if s:
            out.s = self.s_net.trunk(z)
        if a:
            out.a = self.a_net.trunk(z)
        return out

    def evaluate(self, basis: Basis, beta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decoder outputs at the basis points for latents beta (B, m): any of u (B, N),
        grad_u (B, N, 2), s (B, N, 2), a_logit (B, N) and a (B, N)."""
        self._require_configured()
        out = {}
        x, y = basis.points[:, 0], basis.points[:, 1]
        if basis.u is not None:
            b = self.u_net.branch(beta)
            n = self.u_net.combine(basis.u, b)[:, 0]
            # sin(pi min(x, 1 - x)) equals sin(pi x) and is exactly 0 at x = 1 in floating point
            bubble = torch.sin(math.pi * torch.minimum(x, 1 - x)) * torch.sin(math.pi * torch.minimum(y, 1 - y))
            scale = self.u_ref
            out["u"] = scale * bubble * n
            if basis.u_grad is not None:
                dn = [self.u_net.combine([d[k] for d in basis.u_grad], b, bias=False)[:, 0] for k in range(2)]
                db = (math.pi * torch.cos(math.pi * x) * torch.sin(math.pi * y),
                      math.pi * torch.sin(math.pi * x) * torch.cos(math.pi * y))
                out["grad_u"] = scale * torch.stack([db[k] * n + bubble * dn[k] for k in range(2)], -1)
        if basis.s is not None:
            out["s"] = self.s_ref * self.s_net.combine(basis.s, self.s_net.branch(beta)).transpose(1, 2)
        if basis.a is not None:
            logit = self.a_net.combine(basis.a, self.a_net.branch(beta))[:, 0]
            out["a_logit"] = logit
            out["a"] = self.a_from_logit(logit)
        return out

    def a_from_logit(self, logit: torch.Tensor) -> torch.Tensor:
        if self.two_phase:
            lo, hi = self._value(0), self._value(1)
            return lo + (hi - lo) * torch.sigmoid(logit)
        return torch.exp(logit)

    def decode_u(self, beta: torch.Tensor, points: torch.Tensor, *, with_grad: bool = False):
        """u at points (N, 2) for latents (B, m): (B, N), and grad u (B, N, 2) if ``with_grad``."""
        out = self.evaluate(self.basis(points, grad=with_grad), beta)
        return (out["u"], out["grad_u"]) if with_grad else out["u"]

    def decode_s(self, beta: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Flux s = a grad u at points: (B, N, 2)."""
        return self.evaluate(self.basis(points, u=False, s=True), beta)["s"]

    def decode_a(self, beta: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Reconstructed coefficient at points: (B, N)."""
        return self.evaluate(self.basis(points, u=False, a=True), beta)["a"]

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """u on the input's vertex grid: (B, 1, ny, nx) -> (B, 1, ny, nx)."""
        if a.dim() != 4 or a.shape[1] != 1:
            raise ValueError(f"DGNO expects a of shape (B, 1, ny, nx), got {tuple(a.shape)}")
        mean, _ = self.encode(a)
        ny, nx = a.shape[-2:]
        u = self.decode_u(mean, grid_points(ny, nx, device=a.device, dtype=a.dtype))
        return u.reshape(a.shape[0], 1, ny, nx)  # not len(a): a traced batch stays dynamic

    # --- training ------------------------------------------------------------------------------
    def physics_residuals(self, beta: torch.Tensor, tf, a_values: torch.Tensor | None = None,
                          basis: Basis | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weak residuals divided by f and s_ref, (B, J) and (B, J, 2), for the Wendland set ``tf``; the
        coefficient is ``a_values`` (B, J*Q) if given, else the a decoder's reconstruction."""
        basis = basis or self.basis(tf.points, grad=True, s=True, a=a_values is None)
        fields = self.evaluate(basis, beta)
        a_q = fields["a"] if a_values is None else a_values
        weight = constitutive_test_weight(a_q, self.a_ref, self.constitutive_form)
        r1, r2 = darcy_residuals(tf, fields["s"], fields["grad_u"], a_q, self.forcing, weight=weight)
        return r1 / self.forcing, r2 / self.s_ref

    def training_loss(self, x: torch.Tensor, y: torch.Tensor | None, *, problem) -> torch.Tensor:
        """The label-free DGNO loss of a batch of coefficients x (B, 1, ny, nx); see module docstring."""
        self.configure(problem)
        gen = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(self.rng_step))
        self.rng_step += 1
        a_grid = x[:, 0]
        mean, logvar = self.encode(x)
        beta = mean
        if self.generative:
            eps = torch.randn(mean.shape, generator=gen).to(mean)
            beta = mean + torch.exp(0.5 * logvar) * eps
        w = self.loss_weights
        cells = self.cells_for(a_grid.shape[-1]) if a_grid.shape[-1] == a_grid.shape[-2] else None
        terms = {}
        tf = sample_wendland_set(self.centres, self.rbf_radius, n_radial=self.quadrature[0],
                                 n_angular=self.quadrature[1], generator=gen, device=x.device, dtype=x.dtype)
        points = torch.rand(self.data_points, 2, generator=gen).to(x)
        # terms with weight 0 are not computed (a supervised MultiONet: pde_weight = data_weight = 0)
        if w["pde"] > 0:
            r1, r2 = self.physics_residuals(beta, tf, coefficient_at(a_grid, tf.points, cells))
            terms["balance"] = r1.pow(2).mean()
            terms["constitutive"] = r2.pow(2).sum(-1).mean()
        if w["data"] > 0:
            logit = self.evaluate(self.basis(points, u=False, a=True), beta)["a_logit"]
            a_true = coefficient_at(a_grid, points, cells)
            if self.two_phase:
                lo, hi = self._value(0), self._value(1)
                terms["data"] = F.binary_cross_entropy_with_logits(logit, ((a_true - lo) / (hi - lo)).clamp(0, 1))
            else:
                terms["data"] = F.mse_loss(logit, torch.log(a_true.clamp_min(1e-12)))
        if self.generative:
            terms["kl"] = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
        if y is not None and w["supervised"] > 0:
            ny, nx = y.shape[-2:]
            u = self.decode_u(beta, grid_points(ny, nx, device=x.device, dtype=x.dtype)).reshape(y.shape)
            terms["supervised"] = ((u - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1).clamp_min(1e-12)).mean()
        self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
        weight = {**w, "balance": w["pde"], "constitutive": w["pde"] * w["constitutive"]}
        return sum(weight[k] * v for k, v in terms.items())
