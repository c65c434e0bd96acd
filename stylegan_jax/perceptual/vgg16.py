"""The VGG16 LPIPS features of the StyleGAN2-ADA projector and PPL metric, in Flax.

Weights: the reference's `vgg16.pt` (NVIDIA's TorchScript export of the VGG16 + LPIPS weights used
by the StyleGAN metrics; not downloadable here) or a plain state dict with the same names. The
TorchScript archive is read with the allow-list unpickler as data: its scripted modules become
attribute records and its compiled code is never loaded. Names: `layers.conv1..conv13.{weight,bias}`
(the 13 VGG16 convolutions, [out, in, 3, 3]) and `lpips0..lpips4` (the LPIPS channel weights of the
five compared layers); the classifier (`layers.fc*`) is not used.

Features (the published LPIPS definition, Zhang et al. 2018, VGG variant):
  input NHWC in [-1, 1]; downsampled by area averaging to 256x256 when larger (as the reference
  projector and PPL do); scaled per channel by (x - shift) / scale with shift (-0.030, -0.088,
  -0.188), scale (0.458, 0.448, 0.450); 3x3 convolutions with ReLU, 2x2 max pooling between the
  five stages; the last ReLU of each stage (relu1_2, 2_2, 3_3, 4_3, 5_3) is unit-normalised over
  channels (eps 1e-10), weighted by sqrt(lpips_l) and by 1/sqrt(H_l W_l), and all are concatenated.
  The squared L2 distance of two such vectors is the LPIPS distance
  sum_l mean_hw sum_c lpips_lc (f_a - f_b)^2, which is how the reference uses `return_lpips=True`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.cli_errors import CLIError

STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
LPIPS_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
LPIPS_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
MAX_SIZE = 256
EPS = 1e-10
HIGHEST = jax.lax.Precision.HIGHEST

Params = dict[str, Any]


class VGGWeightsError(CLIError, ValueError):
    """A VGG16 weights file is missing or is not the LPIPS VGG16."""


def _expected() -> dict[str, tuple[int, ...]]:
    shapes, cin, k = {}, 3, 1
    for stage in STAGES:
        for cout in stage:
            shapes[f'layers.conv{k}.weight'] = (cout, cin, 3, 3)
            shapes[f'layers.conv{k}.bias'] = (cout,)
            cin, k = cout, k + 1
    return shapes


def params_from_state_dict(sd: dict[str, np.ndarray], source: str = 'state dict') -> Params:
    """{'convs': [(HWIO kernel, bias) x 13], 'lpips': [[C] x 5]} from the reference names."""
    convs = []
    for name, shape in _expected().items():
        if name not in sd:
            raise VGGWeightsError(f'{source}: not the LPIPS VGG16 (missing {name})')
        if tuple(np.shape(sd[name])) != shape:
            raise VGGWeightsError(f'{source}: {name} has shape {tuple(np.shape(sd[name]))}, expected {shape}')
    for k in range(1, 14):
        w = np.asarray(sd[f'layers.conv{k}.weight'], np.float32).transpose(2, 3, 1, 0)
        convs.append((np.ascontiguousarray(w), np.asarray(sd[f'layers.conv{k}.bias'], np.float32)))
    lpips = []
    for i, stage in enumerate(STAGES):
        key = f'lpips{i}'
        if key not in sd:
            raise VGGWeightsError(f'{source}: no LPIPS layer weights ({key} missing): a plain VGG16 is not enough')
        v = np.asarray(sd[key], np.float32).reshape(-1)
        if v.shape != (stage[-1],):
            raise VGGWeightsError(f'{source}: {key} has {v.size} weights, expected {stage[-1]}')
        lpips.append(v)
    return {'convs': convs, 'lpips': lpips}


def load_params(path: str | os.PathLike) -> Params:
    """Read `vgg16.pt` (TorchScript archive) or a torch state dict with the same names, without running it."""
    from stylegan_jax.convert.unpickle import (TORCHSCRIPT_GLOBALS, CheckpointFormatError, ScriptObjectRecord,
                                               UnsafePickleError, load_torch)

    path = Path(path)
    if not path.is_file():
        raise VGGWeightsError(f'{path}: VGG16 weights file not found')
    try:
        obj = load_torch(path, TORCHSCRIPT_GLOBALS)
    except (CheckpointFormatError, UnsafePickleError) as e:
        raise VGGWeightsError(f'{path}: cannot read VGG16 weights ({e})') from None
    if isinstance(obj, ScriptObjectRecord):
        sd = obj.tensors()
    elif isinstance(obj, dict):
        sd = obj.get('state_dict', obj) if isinstance(obj.get('state_dict'), dict) else obj
    else:
        raise VGGWeightsError(f'{path}: not a TorchScript module or state dict ({type(obj).__name__})')
    return params_from_state_dict(sd, str(path))


def area_downsample(x: jax.Array, size: int) -> jax.Array:
    """NHWC average pooling by an integer factor to `size` (torch's interpolate mode='area' for such factors)."""
    f = x.shape[1] // size
    if f <= 1:
        return x
    n, h, w, c = x.shape
    return x.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))


def lpips_features(params: Params, images: jax.Array) -> jax.Array:
    """[N, H, W, 3] floats in [-1, 1] -> [N, D] LPIPS feature vectors (see the module docstring)."""
    x = area_downsample(images.astype(jnp.float32), MAX_SIZE)
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    x = (x - LPIPS_SHIFT) / LPIPS_SCALE
    feats, k = [], 0
    for s, stage in enumerate(STAGES):
        if s:
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID')
        for _ in stage:
            w, b = params['convs'][k]
            x = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=HIGHEST)
            x = jax.nn.relu(x + b)
            k += 1
        norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
        f = x / (norm + EPS) * jnp.sqrt(params['lpips'][s]) / np.sqrt(x.shape[1] * x.shape[2])
        feats.append(f.reshape(f.shape[0], -1))
    return jnp.concatenate(feats, axis=1)
