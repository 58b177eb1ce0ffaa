"""Training: the settings (``TrainConfig``, TOML files), the one loop every kind of operator runs
(:mod:`sciops.training.loop`), data-parallel helpers and the memory check. The trainers of each
kind of data live with their kind (``sciops.grid.trainer``, ``sciops.particles.trainer``)."""
from sciops.training.config import TrainConfig, load_toml

__all__ = ["TrainConfig", "load_toml"]
