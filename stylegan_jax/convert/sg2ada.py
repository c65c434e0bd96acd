"""StyleGAN2-ADA (PyTorch) network snapshots (`network-snapshot-*.pkl`) -> TorchStyleNetworks.

The snapshot is a pickle of dict(G, D, G_ema, augment_pipe, training_set_kwargs) whose networks are
`torch_utils.persistence` objects. The allow-list unpickler turns each into a `PersistentRecord`
(its `meta`: class name, constructor kwargs and module `__dict__`), never running `module_src`.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from stylegan_jax.convert import unpickle
from stylegan_jax.convert.common import ConversionError, StateDict, TorchStyleNetworks

# Positional-argument names of the reference constructors (snapshots normally use kwargs only).
_G_ARGS = ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'mapping_kwargs', 'synthesis_kwargs')
_D_ARGS = ('c_dim', 'img_resolution', 'img_channels', 'architecture', 'channel_base', 'channel_max',
           'num_fp16_res', 'conv_clamp', 'cmap_dim', 'block_kwargs', 'mapping_kwargs', 'epilogue_kwargs')


NAME = 'stylegan2-ada-pytorch snapshot'


def detect(obj: Any) -> bool:
    """True for the unpickled dict of a StyleGAN2-ADA training snapshot."""
    return isinstance(obj, dict) and isinstance(obj.get('G_ema'), unpickle.PersistentRecord)


def module_state_dict(rec: unpickle.PersistentRecord, prefix: str = '') -> StateDict:
    """The `state_dict()` of a persistent module record: parameters and persistent buffers, recursively."""
    if not isinstance(rec, unpickle.PersistentRecord):
        raise ConversionError(f'{prefix or "network"}: expected a persistent module, found {type(rec).__name__}')
    st = rec.state
    skip = set(st.get('_non_persistent_buffers_set') or ())
    out: StateDict = {}
    for name, value in (st.get('_parameters') or {}).items():
        if value is not None:
            out[prefix + name] = np.array(value, dtype=np.float32)
    for name, value in (st.get('_buffers') or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = np.array(value)
    for name, child in (st.get('_modules') or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f'{prefix}{name}.'))
    return out


def init_kwargs(rec: unpickle.PersistentRecord, arg_names: tuple[str, ...]) -> dict[str, Any]:
    """Constructor kwargs of a persistent record (positional args named after the reference signature)."""
    st = rec.state
    kwargs = dict(zip(arg_names, st.get('_init_args') or ()))
    kwargs.update(st.get('_init_kwargs') or {})
    return kwargs


def convert(data: dict) -> TorchStyleNetworks:
    """Unpickled snapshot dict -> TorchStyleNetworks (G_ema for sampling, G and D for training)."""
    g_ema = data['G_ema']
    nets = TorchStyleNetworks(
        G_ema=module_state_dict(g_ema),
        G_kwargs=init_kwargs(g_ema, _G_ARGS),
        source_format=NAME,
    )
    if isinstance(data.get('G'), unpickle.PersistentRecord):
        nets.G = module_state_dict(data['G'])
    if isinstance(data.get('D'), unpickle.PersistentRecord):
        nets.D = module_state_dict(data['D'])
        nets.D_kwargs = init_kwargs(data['D'], _D_ARGS)
    aug = data.get('augment_pipe')
    if isinstance(aug, unpickle.PersistentRecord):
        p = (aug.state.get('_buffers') or {}).get('p')
        if p is not None:
            nets.extra['ada_p'] = float(np.asarray(p).reshape(-1)[0])
    if isinstance(data.get('training_set_kwargs'), dict):
        nets.extra['training_set_kwargs'] = data['training_set_kwargs']
    return nets


def load_sg2ada(path: str | os.PathLike) -> TorchStyleNetworks:
    """Read a StyleGAN2-ADA snapshot file as data only (ConversionError if it is another format)."""
    from stylegan_jax.convert import reader
    return reader.read_any(path, formats=(sys.modules[__name__],))
