"""The training run's user-facing error."""
from __future__ import annotations

from stylegan_jax.cli_errors import CLIError

__all__ = ['TrainingError']


class TrainingError(CLIError, ValueError):
    """Training cannot go on (bad config, diverged, incompatible workdir); the message says why."""
