"""Initialise a training run from another network (transfer learning), reporting every tensor.

Policy (``transfer_variables``), per network ``G``, ``D`` and ``G_ema`` and per tensor name
(``params/synthesis/b64/conv0/weight``, ``buffers/mapping/w_avg``, ...):

* ``copied``:   the source has a tensor of that name and the same shape: copied exactly.
* ``reshaped``: same name and rank, different shape (a changed channel count, c_dim or mapping
  width): the overlapping leading block ``src[:m0, :m1, ...]`` is copied into the destination's
  fresh initialisation and the rest keeps that initialisation (crop when shrinking, pad when
  growing). ``buffers/mapping/w_avg`` follows the same rule.
* ``new``:      no source tensor of that name (or a different rank): the fresh init is kept.
* ``dropped``:  a source tensor with no destination of that name; listed, never silent.

Names carry the resolution (``b{res}``) and layer index (``fc{i}``), so with a resolution
mismatch the blocks at common resolutions transfer and the others are new or dropped; e.g.
32 -> 64: ``synthesis/b64/*`` and D's ``b64/*`` are new, D's ``b32/fromrgb`` (the old input
layer) is dropped because ``b32`` is no longer D's first block. A deeper mapping network copies
``fc0..fc{k-1}`` and initialises the extra layers; a shallower one drops the extra layers.

A missing source ``G`` falls back to ``G_ema`` (and vice versa); a missing source ``D`` leaves the
destination ``D`` freshly initialised (all rows ``new``).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from stylegan_jax.networks import NetworkConfig, flatten_names, unflatten_names

__all__ = ['TransferRow', 'transfer_variables', 'load_transfer_source', 'format_table', 'ACTIONS', 'initial_state',
           'load_source', 'resume_notes']

ACTIONS = ('copied', 'reshaped', 'new', 'dropped')
NETWORKS = ('G', 'D', 'G_ema')


@dataclasses.dataclass(frozen=True)
class TransferRow:
    """What happened to one tensor: ``name`` is ``NET/collection/path/to/tensor``."""
    name: str
    action: str  # one of ACTIONS
    src_shape: tuple[int, ...] | None
    dst_shape: tuple[int, ...] | None


def _overlap_copy(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """dst with its leading block overlapping src replaced by src (same rank)."""
    out = np.array(dst, copy=True)
    region = tuple(slice(0, min(a, b)) for a, b in zip(src.shape, dst.shape))
    out[region] = src[region].astype(out.dtype)
    return out


def _transfer_one(net: str, src: dict | None, dst: dict) -> tuple[dict, list[TransferRow]]:
    src_flat = flatten_names(src, sep='/') if src is not None else {}
    dst_flat = flatten_names(dst, sep='/')
    rows: list[TransferRow] = []
    out: dict[str, Any] = {}
    for name, d in dst_flat.items():
        d = np.asarray(d)
        s = src_flat.get(name)
        full = f'{net}/{name}'
        if s is None:
            out[name] = d
            rows.append(TransferRow(full, 'new', None, tuple(d.shape)))
            continue
        s = np.asarray(s)
        if s.shape == d.shape:
            out[name] = s.astype(d.dtype)
            rows.append(TransferRow(full, 'copied', tuple(s.shape), tuple(d.shape)))
        elif s.ndim == d.ndim and s.size and d.size:
            out[name] = _overlap_copy(s, d)
            rows.append(TransferRow(full, 'reshaped', tuple(s.shape), tuple(d.shape)))
        else:
            out[name] = d
            rows.append(TransferRow(full, 'new', tuple(s.shape), tuple(d.shape)))
    for name, s in src_flat.items():
        if name not in dst_flat:
            rows.append(TransferRow(f'{net}/{name}', 'dropped', tuple(np.shape(s)), None))
    return unflatten_names(out, sep='/'), rows


def transfer_variables(src: dict[str, dict], src_cfg: NetworkConfig, dst: dict[str, dict],
                       dst_cfg: NetworkConfig) -> tuple[dict[str, dict], list[TransferRow]]:
    """Copy what matches from ``src`` into (a copy of) ``dst``; return it and one row per tensor.

    ``src``/``dst`` map 'G', 'D', 'G_ema' to variables ``{'params': ..., 'buffers': ...}``.
    ``dst`` is a fresh initialisation for ``dst_cfg``; it is not modified. The configs are used to
    check image channels agree (an RGB network cannot become a greyscale one by copying).
    """
    if src_cfg.img_channels != dst_cfg.img_channels:
        raise ValueError(f'transfer: source has {src_cfg.img_channels} image channels, '
                         f'destination {dst_cfg.img_channels}')
    fallback = {'G': ('G', 'G_ema'), 'G_ema': ('G_ema', 'G'), 'D': ('D',)}
    out: dict[str, dict] = {}
    rows: list[TransferRow] = []
    for net, variables in dst.items():
        source = next((src[k] for k in fallback.get(net, (net,)) if src.get(k) is not None), None)
        out[net], net_rows = _transfer_one(net, source, variables)
        rows += net_rows
    return out, rows


def load_transfer_source(path: str | os.PathLike, step: int | None = None,
                         kimg: float | None = None) -> tuple[NetworkConfig, dict[str, dict]]:
    """(config, {'G', 'G_ema'[, 'D']}) from any checkpoint ``checkpoint.load_networks`` reads.

    ``path``: a StyleGAN2-ADA ``.pkl``, rosinality ``.pt`` or TF ``.pkl`` (converted in memory, cached
    by file hash), a converted checkpoint, or a training workdir (``step`` / ``kimg`` pick a snapshot,
    default the latest). ``G`` falls back to ``G_ema`` when the checkpoint has no raw generator;
    ``D`` is left out when absent. Raises ``checkpoint.CheckpointError`` (a ValueError) naming the
    path on bad input.
    """
    from stylegan_jax.checkpoint import CheckpointError, load_networks
    cfg, nets, _ = load_networks(path, step=step, kimg=kimg)
    if 'G_ema' not in nets:
        raise CheckpointError(f'{path}: checkpoint has no G_ema network')
    nets.setdefault('G', nets['G_ema'])
    return cfg, nets


def _fmt_shape(shape: tuple[int, ...] | None) -> str:
    return '-' if shape is None else str(tuple(shape))


def format_table(rows: list[TransferRow], notes: list[str] | tuple[str, ...] = ()) -> str:
    """A printable summary: counts per network and action, then every row that is not a copy, then
    ``notes`` (one ``transfer: ...`` line each, e.g. the resume settings).

    Rows identical except for the network (G and G_ema share their architecture) are shown once
    with the networks joined, e.g. ``G,G_ema``.
    """
    nets = list(dict.fromkeys(r.name.split('/', 1)[0] for r in rows))
    lines = ['transfer: ' + (' | '.join(
        f'{net}: ' + ', '.join(f'{sum(1 for r in rows if r.name.split("/", 1)[0] == net and r.action == a)} {a}'
                               for a in ACTIONS) for net in nets) or 'nothing to transfer')]
    grouped: dict[tuple, list[str]] = {}
    for r in rows:
        if r.action == 'copied':
            continue
        net, rest = r.name.split('/', 1)
        grouped.setdefault((r.action, rest, r.src_shape, r.dst_shape), []).append(net)
    if grouped:
        table = [('action', 'network', 'tensor', 'source shape', 'new shape')]
        order = {a: i for i, a in enumerate(ACTIONS)}
        for (action, rest, s, d), ns in sorted(grouped.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
            table.append((action, ','.join(ns), rest, _fmt_shape(s), _fmt_shape(d)))
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            lines.append('  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    lines += [f'transfer: {n}' for n in notes]
    return '\n'.join(lines)


# --------------------------------------------------------------------------- starting a run from a source

def resume_notes(ada_kimg: float, ema_rampup: float | None, automatic: tuple[str, ...] | list[str]) -> list[str]:
    """What the run uses for train.py's `--resume` settings, and whether they were automatic (-1 in the
    config: the reference's resume values) or set."""
    ada = (f'ada.kimg {ada_kimg:g} (the reference\'s resume setting: ADA reacts faster at the start)'
           if 'ada.kimg' in automatic else f'ada.kimg {ada_kimg:g} (set in the config)')
    ramp = 'off' if not ema_rampup else f'{ema_rampup:g}'
    ema = (f'EMA ramp-up {ramp} (the reference\'s resume setting)' if 'train.ema_rampup' in automatic
           else f'EMA ramp-up {ramp} (set in the config)')
    return [f'{ada}; {ema}']


def load_source(config: Any) -> tuple[NetworkConfig, dict[str, dict]]:
    """`load_transfer_source` of transfer.path, with transfer.step / transfer.kimg only when set (not -1)."""
    t = config.transfer
    kwargs: dict[str, Any] = {}
    if int(t.get('step', -1)) != -1:
        kwargs['step'] = int(t.step)
    if float(t.get('kimg', -1)) != -1:
        kwargs['kimg'] = float(t.kimg)
    return load_transfer_source(str(t.path), **kwargs)


def initial_state(config: Any, cfg: NetworkConfig, tc: Any, key: Any, notes: list[str] | tuple[str, ...] = ()
                  ) -> tuple[Any, str]:
    """(fresh TrainState whose G, G_ema and D start from transfer.path, the printable transfer table).

    Every destination tensor starts from its fresh initialisation (as `init_state` would draw it) and
    takes what `transfer_variables` copies; optimiser states, ADA and path-length statistics start fresh.
    """
    import jax

    from stylegan_jax.train import step as step_lib
    src_cfg, src = load_source(config)
    g_init, d_init = step_lib.init_networks(cfg, jax.random.fold_in(key, 1))
    out, rows = transfer_variables(src, src_cfg, {'G': g_init, 'G_ema': g_init, 'D': d_init}, cfg)
    state = step_lib.init_state(cfg, tc, key, g_vars=out['G'], d_vars=out['D'], ema_vars=out['G_ema'],
                                ada_p=float(config.ada.p))
    return state, format_table(rows, notes)
