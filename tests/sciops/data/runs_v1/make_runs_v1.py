"""How the run directories beside this file were written: with sciops at commit 9036ce9 (run schema 1,
before the run spec), from this folder, in a venv where that commit was installed. They stay as
written; tests/sciops/test_runs.py checks that the current sciops loads them and reproduces
``expected_v1.npz``. (This script uses that commit's module layout and does not run on the current one.)"""
import numpy as np

import sciops
from sciops import problems
from sciops.cli import main
from sciops.datasets import generate
from sciops.datasets.particles import read_trajectories
from sciops.training import TrainConfig, train
from sciops.training.particles import ParticleTrainConfig
from sciops.training.particles import train as train_particles

generate(problems.get("darcy", resolution=17), 24, "darcy.h5", seed=3, progress=False)
train("fno", "darcy.h5", "fno_v1", hparams={"modes": 4, "width": 8, "layers": 2},
      config=TrainConfig(epochs=2, batch_size=8), progress=False)
a = problems.get("darcy", resolution=17).sample_inputs(3, seed=99)
u = sciops.load("fno_v1").solve(a)

assert main(["generate", "particles", "-n", "3", "-o", "particles.h5", "--seed", "1", "-q", "--param", "n_particles=60",
             "--param", "frames=9", "--param", "scene=dam_break"]) == 0
train_particles("giorom", "particles.h5", "giorom_v1",
                hparams=dict(hidden=8, latent_grid=3, attention_layers=1, heads=2, radius=0.15, interaction_layers=1),
                config=ParticleTrainConfig(epochs=1, n_sparse=30, reconstruction_steps=2, windows_per_epoch=2),
                progress=False)
s = sciops.load("giorom_v1")
pos, types, _ = read_trajectories("particles.h5")
window = pos[0, :s.stepper.history + 1]
roll = s.solve({"positions": window, "particle_type": types[0]}, 2)
np.savez("expected_v1.npz", darcy_inputs=a, fno_outputs=u, particle_window=window, particle_type=types[0],
         giorom_rollout=roll)
