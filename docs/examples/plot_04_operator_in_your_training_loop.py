"""
An operator in your own training loop
=====================================

Every sciops operator is a plain ``torch.nn.Module`` built by :func:`sciops.operators.build`
(what ``FNO(n_modes=...)`` is in neuraloperator): channel-first ``(batch, C_in, *space)`` in,
``(batch, C_out, *space)`` out. Train it with your own loop, optimiser and loss; the sciops losses
(``sciops.losses.make_loss``: relative Lp and Sobolev H^s norms) are ordinary callables.
"""
import matplotlib.pyplot as plt
import torch

from sciops import operators, problems
from sciops.losses import make_loss

torch.manual_seed(0)
problem = problems.get("darcy", resolution=17, subsample=2, coefficient="fno")
a, u, _ = problem.generate(80, seed=0)                 # numpy (80, 17, 17), float32
x, y = torch.from_numpy(a)[:, None], torch.from_numpy(u)[:, None]
x = (x - x.mean()) / x.std()                            # your normalisation
x_train, y_train, x_test, y_test = x[:64], y[:64], x[64:], y[64:]

model = operators.build("fno", in_channels=1, out_channels=1, ndim=2, geometry="bounded",
                        modes=6, width=16, layers=2)
print(model.__class__.__name__, sum(p.numel() for p in model.parameters()), "parameters")
print("hyperparameters:", operators.hyperparameters("fno"))

# %%
# A plain loop: Adam, the relative H1 loss (``make_loss("h1", ...)``), scaled targets.
loss_fn = make_loss("h1", geometry="bounded")
scale = y_train.abs().max()
opt = torch.optim.Adam(model.parameters(), lr=5e-3)
history = []
for epoch in range(30):
    for idx in torch.randperm(len(x_train)).split(16):
        opt.zero_grad()
        loss = loss_fn(model(x_train[idx]) * scale, y_train[idx])
        loss.backward()
        opt.step()
    with torch.no_grad():
        history.append(make_loss("l2", geometry="bounded")(model(x_test) * scale, y_test).item())
print(f"test relative L2 after {len(history)} epochs: {history[-1]:.4f}")

fig, axes = plt.subplots(1, 3, figsize=(11, 3))
axes[0].semilogy(history)
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("test relative L2")
with torch.no_grad():
    pred = model(x_test[:1]) * scale
for ax, field, title in ((axes[1], y_test[0, 0], "solver"), (axes[2], pred[0, 0], "FNO")):
    im = ax.imshow(field, origin="lower", extent=(0, 1, 0, 1))
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()
