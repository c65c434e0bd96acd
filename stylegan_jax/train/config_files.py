"""Load training config files (configs/NAME.py) by path, without importing jax.

The files are not a package: `run_train.py --config configs/X.py` loads one by path (ml_collections
`config_flags`), and a file builds on another with `base(__file__, 'NAME')`. Loading goes through
importlib by file path only, so a config file can be read (and `--config.key=value` checked) before
jax, TensorFlow or the networks are imported.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
from typing import Any

__all__ = ['REPO_CONFIGS', 'base', 'config_path', 'load_config']

# configs/ of a source checkout (the editable install this project is used as).
REPO_CONFIGS = pathlib.Path(__file__).resolve().parents[2] / 'configs'


def config_path(name_or_path: str | os.PathLike) -> pathlib.Path:
    """A config file's path: an existing path as given, else configs/NAME.py of the checkout."""
    path = pathlib.Path(name_or_path)
    if path.suffix == '.py' or path.exists():
        return path
    return REPO_CONFIGS / f'{path.name}.py'


def load_config(name_or_path: str | os.PathLike, arg: str | None = None) -> Any:
    """`get_config()` (or `get_config(arg)`, as `--config FILE:ARG` does) of a config file.

    `name_or_path` is a path or a name in configs/ ('paper256'). Raises FileNotFoundError naming the
    file when it does not exist.
    """
    path = config_path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such config file')
    spec = importlib.util.spec_from_file_location(f'_stylegan_jax_config_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config() if arg is None else module.get_config(arg)


def base(config_file: str | os.PathLike, name: str, arg: str | None = None) -> Any:
    """`get_config()` of configs/NAME.py next to `config_file` (a config's own `__file__`)."""
    return load_config(pathlib.Path(config_file).with_name(f'{name}.py'), arg)
