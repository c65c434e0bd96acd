"""One entry point for every checkpoint file format: read the file once, ask each format module.

A format module offers `NAME`, `detect(obj) -> bool` (is this unpickled object mine?) and
`convert(obj) -> TorchStyleNetworks` (map it to StyleGAN2-ADA names). `read_any` reads the file
once with the allow-list unpickler (torch zip, legacy torch stream or plain pickle), gives the
object to the first module that detects it, and prefixes every error with the file name.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Sequence

from stylegan_jax.convert import rosinality, sg2ada, tf_stylegan2, unpickle
from stylegan_jax.convert.common import ConversionError, TorchStyleNetworks

FORMATS: tuple[ModuleType, ...] = (sg2ada, rosinality, tf_stylegan2)
FILE_ERRORS = (ConversionError, unpickle.UnsafePickleError, unpickle.CheckpointFormatError)


def _describe(data: Any) -> str:
    kind = type(data).__name__
    keys = ', '.join(sorted(map(str, data))[:6]) if isinstance(data, dict) else ''
    return kind + (f': {keys}' if keys else '')


def detect_format(data: Any, formats: Sequence[ModuleType] = FORMATS) -> ModuleType | None:
    """The first format module whose `detect` accepts the unpickled object, or None."""
    return next((fmt for fmt in formats if fmt.detect(data)), None)


def read_any(path: str | os.PathLike, formats: Sequence[ModuleType] = FORMATS) -> TorchStyleNetworks:
    """Read a checkpoint file as data only and map it to StyleGAN2-ADA names (errors name the file)."""
    name = os.fspath(path)
    if not os.path.isfile(path):
        raise ConversionError(f'{name}: no such file')
    try:
        data = unpickle.load_file(path)
        fmt = detect_format(data, formats)
        if fmt is None:
            expected = ', '.join(f.NAME for f in formats)
            raise ConversionError(f'unrecognised checkpoint ({_describe(data)}); expected one of: {expected}')
        return fmt.convert(data)
    except FILE_ERRORS as e:
        raise type(e)(f'{name}: {e}') from None
    except OSError as e:
        raise ConversionError(f'{name}: cannot read ({e.strerror or e})') from None


def convert_file(path: str | os.PathLike, w_avg_samples: int = 10000, seed: int = 0) -> Any:
    """`read_any` plus the mapping to our config and variables (`to_flax.ConvertedNetworks`); errors name the file."""
    from stylegan_jax.convert import to_flax

    nets = read_any(path)
    try:
        return to_flax.networks_from_torch_style(nets, w_avg_samples=w_avg_samples, seed=seed)
    except ConversionError as e:
        raise ConversionError(f'{os.fspath(path)}: {e}') from None
