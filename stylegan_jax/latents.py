"""Saved latents (`projected_w.npz`) and the operations on per-layer latents that the tools share.

File format (an `.npz`, no pickles), compatible with the reference projector / generate.py:
  w                       [N, num_ws, w_dim] float32 per-layer latents (the reference stores [1, ...])
  noise/<buffer name>     optional [R, R] float32 noise maps (e.g. `noise/synthesis/b8/conv0/noise_const`),
                          the noise the projection optimised; rendering with them and noise mode
                          'const' reproduces `proj.png` exactly
  meta                    optional JSON string (what made the file: checkpoint, target, distance, ...)
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from stylegan_jax.cli_errors import CLIError

NOISE_PREFIX = 'noise/'
NOISE_LEAF = 'noise_const'


class LatentsError(CLIError, ValueError):
    """A latents file is missing, damaged or does not fit the network."""


@dataclasses.dataclass
class Latents:
    """Per-layer latents [N, num_ws, w_dim], optionally the noise buffers they belong with, and metadata."""
    ws: np.ndarray
    noise: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def save(path: str | os.PathLike, ws: np.ndarray, noise: dict[str, np.ndarray] | None = None,
         meta: dict[str, Any] | None = None) -> Path:
    """Write a latents file atomically (temporary name, then rename)."""
    path = Path(path)
    ws = np.asarray(ws, np.float32)
    if ws.ndim == 2:
        ws = ws[None]
    arrays = {'w': ws, 'meta': np.array(json.dumps(meta or {}, sort_keys=True, default=str))}
    for name, value in (noise or {}).items():
        arrays[NOISE_PREFIX + name] = np.asarray(value, np.float32)
    tmp = path.with_name(path.name + '.tmp.npz')
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load(path: str | os.PathLike, num_ws: int | None = None, w_dim: int | None = None) -> Latents:
    """Read a latents file; checks the shape against the network when num_ws / w_dim are given.

    A single w [w_dim] or [N, w_dim] is broadcast to every layer.
    """
    path = Path(path)
    if not path.is_file():
        raise LatentsError(f'{path}: no such latents file')
    try:
        with np.load(path, allow_pickle=False) as z:
            if 'w' not in z.files:
                raise LatentsError(f'{path}: not a latents file (no array "w"; has {", ".join(z.files[:5])})')
            ws = np.asarray(z['w'], np.float32)
            noise = {k[len(NOISE_PREFIX):]: np.asarray(z[k], np.float32) for k in z.files
                     if k.startswith(NOISE_PREFIX)}
            meta = json.loads(str(z['meta'])) if 'meta' in z.files else {}
    except LatentsError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise LatentsError(f'{path}: cannot read latents ({e})') from None
    if ws.ndim == 1:
        ws = ws[None]
    if ws.ndim == 2:
        ws = np.repeat(ws[:, None], num_ws or 1, axis=1)
    if ws.ndim != 3 or (num_ws is not None and ws.shape[1] != num_ws) or (w_dim is not None and ws.shape[2] != w_dim):
        want = f'[N, {num_ws if num_ws is not None else "num_ws"}, {w_dim if w_dim is not None else "w_dim"}]'
        raise LatentsError(f'{path}: w has shape {list(ws.shape)}, this network takes {want}')
    if not np.all(np.isfinite(ws)):
        raise LatentsError(f'{path}: w holds non-finite values')
    return Latents(ws, noise or None, meta if isinstance(meta, dict) else {})


def truncate(ws: np.ndarray, center: np.ndarray, psi: float, cutoff: int | None = None) -> np.ndarray:
    """center + psi * (ws - center) on the first `cutoff` layers (all by default); center [w_dim] or [num_ws, w_dim]."""
    ws = np.asarray(ws, np.float32)
    center = np.asarray(center, np.float32)
    out = center + np.float32(psi) * (ws - center)
    if cutoff is not None:
        out[:, cutoff:] = ws[:, cutoff:]
    return out.astype(np.float32)


def noise_buffers(variables: dict) -> dict[str, np.ndarray]:
    """The generator's constant noise maps, flat: {'synthesis/b8/conv0/noise_const': [8, 8], ...}."""
    from stylegan_jax.networks import flatten_names

    flat = flatten_names(dict(variables.get('buffers', {})), sep='/')
    return {k: np.asarray(v) for k, v in flat.items() if k.endswith(NOISE_LEAF)}


def with_noise(variables: dict, noise: dict[str, Any]) -> dict:
    """A copy of `variables` whose noise buffers are replaced by `noise` (names as `noise_buffers` gives)."""
    from stylegan_jax.networks import flatten_names, unflatten_names

    flat = flatten_names(dict(variables['buffers']), sep='/')
    unknown = sorted(set(noise) - set(flat))
    if unknown:
        raise LatentsError(f'noise buffer {unknown[0]!r} does not exist in this network')
    for name, value in noise.items():
        if tuple(np.shape(value)) != tuple(np.shape(flat[name])):
            raise LatentsError(f'noise buffer {name!r} has shape {tuple(np.shape(value))}, the network has '
                               f'{tuple(np.shape(flat[name]))}')
        flat[name] = value
    return {**variables, 'buffers': unflatten_names(flat, sep='/')}
