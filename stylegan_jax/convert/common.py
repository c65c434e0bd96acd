"""The hub every converter goes through: networks in StyleGAN2-ADA (PyTorch) names and layouts.

Each source format (StyleGAN2-ADA pickle, rosinality .pt, NVlabs TF1 pickle) is first mapped to
state dicts keyed exactly like `Generator.state_dict()` / `Discriminator.state_dict()` of
stylegan2-ada-pytorch (e.g. `mapping.fc0.weight`, `synthesis.b8.conv0.affine.bias`, `b32.skip.weight`),
with PyTorch layouts (conv weights [out, in, kh, kw], dense weights [out, in]), plus the
constructor kwargs of those classes. `stylegan_jax.convert.to_flax` then turns that into our
parameter pytrees, checking every key and shape.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from stylegan_jax.cli_errors import CLIError

StateDict = dict[str, np.ndarray]


class ConversionError(CLIError, ValueError):
    """A tensor is missing, unexpected or of the wrong shape; the message names the key."""


@dataclasses.dataclass
class TorchStyleNetworks:
    """Networks in StyleGAN2-ADA PyTorch naming, ready for `to_flax`.

    G_kwargs / D_kwargs follow stylegan2-ada-pytorch's `Generator(...)` / `Discriminator(...)`
    arguments: z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs (num_layers, ...),
    synthesis_kwargs (channel_base, channel_max, num_fp16_res, conv_clamp) for G; c_dim,
    img_resolution, img_channels, channel_base, channel_max, num_fp16_res, conv_clamp,
    mapping_kwargs, epilogue_kwargs (mbstd_group_size, mbstd_num_channels) for D.
    """
    G_ema: StateDict
    G_kwargs: dict[str, Any]
    G: StateDict | None = None
    D: StateDict | None = None
    D_kwargs: dict[str, Any] | None = None
    source_format: str = ''
    notes: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. ada_p, training_set_kwargs
