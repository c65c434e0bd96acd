"""Our checkpoints -> files other StyleGAN2 code loads. Format 'rosinality': a rosinality/stylegan2-pytorch `.pt`.

The file is the layout rosinality's `convert_weight.py` writes, `{'g_ema', 'latent_avg'[, 'g', 'd']}`
(state dicts as OrderedDicts of tensors; `latent_avg` = our w_avg), written by `torch_writer`
without torch. `torch.load(path, weights_only=True)` reads it; rosinality's
`Generator(size, style_dim, n_mlp, channel_multiplier=M).load_state_dict(ckpt['g_ema'])` accepts it
when our channel counts follow rosinality's table (`rosinality.channel_multiplier` finds M; the
export notes say which M, or that none fits). Reading it back with `stylegan-sample` gives the same
images (tested). What rosinality's model cannot express is refused (conditional nets, non-RGB,
z_dim != w_dim) or reported in the notes (conv_clamp, a mapping lr multiplier other than 0.01).
"""
from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import numpy as np

from stylegan_jax.convert import rosinality, torch_writer
from stylegan_jax.convert.common import ConversionError

FORMATS = ('rosinality',)


def _ada_state(variables: dict) -> dict[str, np.ndarray]:
    """Our variables {'params', 'buffers'} -> one flat state dict in ADA names ('mapping.fc0.weight')."""
    from stylegan_jax.networks import flatten_names

    out: dict[str, np.ndarray] = {}
    for collection in ('params', 'buffers'):
        out.update({k: np.asarray(v) for k, v in flatten_names(dict(variables.get(collection, {}))).items()})
    return out


def to_rosinality(cfg: Any, nets: dict[str, dict]) -> tuple[dict[str, Any], list[str]]:
    """(the checkpoint object, notes) for G_ema (and G, D when present)."""
    notes: list[str] = []
    g_ema = _ada_state(nets['G_ema'])
    obj: dict[str, Any] = {
        'g_ema': collections.OrderedDict(rosinality.generator_from_ada(g_ema, cfg, 'G_ema')),
        'latent_avg': np.asarray(g_ema['mapping.w_avg'], np.float32),
    }
    if 'G' in nets:
        obj['g'] = collections.OrderedDict(rosinality.generator_from_ada(_ada_state(nets['G']), cfg, 'G'))
    if 'D' in nets:
        try:
            obj['d'] = collections.OrderedDict(rosinality.discriminator_from_ada(_ada_state(nets['D']), cfg, 'D'))
        except ConversionError as e:
            notes.append(f'D not exported: {e}')
    m = rosinality.channel_multiplier(cfg)
    n_mlp = cfg.mapping_layers
    if m is None:
        notes.append(f'channel counts {[cfg.channels(2 ** k) for k in range(2, int(np.log2(cfg.img_resolution)) + 1)]} '
                     f'(4x4 up) follow no rosinality channel_multiplier: torch.load and stylegan-jax read the file, '
                     f"rosinality's Generator needs its channel table changed to load it")
    else:
        notes.append(f"rosinality: Generator(size={cfg.img_resolution}, style_dim={cfg.w_dim}, n_mlp={n_mlp}, "
                     f"channel_multiplier={m}) loads ckpt['g_ema']")
    if cfg.conv_clamp is not None:
        notes.append(f'conv_clamp={cfg.conv_clamp:g} dropped: rosinality does not clamp activations (same images '
                     f'unless an activation exceeds it)')
    if cfg.mapping_lr_multiplier != 0.01:
        notes.append(f'mapping lr multiplier {cfg.mapping_lr_multiplier:g}: pass lr_mlp={cfg.mapping_lr_multiplier:g} '
                     f"to rosinality's Generator")
    return obj, notes


def export(src: str | os.PathLike, out: str | os.PathLike, fmt: str = 'rosinality', *, step: int | None = None,
           kimg: float | None = None, overwrite: bool = False) -> tuple[Path, list[str]]:
    """Read any checkpoint (see checkpoint.load_networks) and write it in `fmt`; returns (path, notes)."""
    from stylegan_jax import checkpoint

    if fmt not in FORMATS:
        raise ConversionError(f'unknown export format {fmt!r} (supported: {", ".join(FORMATS)})')
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConversionError(f'{out}: exists (choose another name or pass --overwrite)')
    if not out.parent.is_dir():
        raise ConversionError(f'{out.parent}: no such directory')
    cfg, nets, _ = checkpoint.load_networks(src, step=step, kimg=kimg)
    if 'G_ema' not in nets:
        raise ConversionError(f'{src}: no G_ema network to export')
    obj, notes = to_rosinality(cfg, nets)
    return torch_writer.save_torch(obj, out), notes
