"""Training: settings (``TrainConfig``, TOML files) and the ``Trainer``."""
from sciops.training.config import TrainConfig, load_toml
from sciops.training.trainer import Trainer, build_model, resolve_device, train

__all__ = ["TrainConfig", "Trainer", "build_model", "load_toml", "resolve_device", "train"]
