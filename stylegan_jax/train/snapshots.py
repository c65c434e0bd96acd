"""Training snapshots on disk: orbax step directories in WORKDIR/checkpoints, and which of them to keep.

    WORKDIR/checkpoints/<step>/        orbax, atomic (written under a temporary name, renamed when complete)
        G_ema/, G/, D/                 {'params', 'buffers'} trees (the layout of a converted checkpoint)
        state/                         optimizer states, pl_mean, ADA p and accumulators, step, rng
        meta/                          JSON: step (= data position), kimg, batch, seed, time

Every snapshot is kept by default, as the reference keeps every network-snapshot-*.pkl;
`keep=N` keeps the last N and, when FID is measured, also the snapshot with the best FID.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax import checkpoint as ckpt_lib
from stylegan_jax import networks
from stylegan_jax.train import step as step_lib
from stylegan_jax.train.errors import TrainingError

__all__ = ['check_network_json', 'open_manager', 'prune', 'restore', 'save', 'steps_to_delete']

ITEMS = ('G_ema', 'G', 'D', 'state', 'meta')


def open_manager(workdir: pathlib.Path) -> Any:
    """The orbax CheckpointManager of WORKDIR/checkpoints (deletion is ours: see `prune`)."""
    import orbax.checkpoint as ocp
    options = ocp.CheckpointManagerOptions(max_to_keep=None, create=True)
    return ocp.CheckpointManager(workdir / 'checkpoints', options=options, item_names=ITEMS)


def _state_items(state: step_lib.TrainState) -> dict[str, Any]:
    """Host state -> the checkpoint items (nested dicts of numpy arrays)."""
    import flax
    s = jax.tree_util.tree_map(np.asarray, state)
    return {
        'G_ema': {'params': s.ema_params, 'buffers': s.ema_buffers},
        'G': {'params': s.g_params, 'buffers': s.g_buffers},
        'D': {'params': s.d_params},
        'state': {'g_opt': flax.serialization.to_state_dict(s.g_opt),
                  'd_opt': flax.serialization.to_state_dict(s.d_opt),
                  'pl_mean': s.pl_mean, 'ada_p': s.ada_p, 'ada_sum': s.ada_sum, 'ada_count': s.ada_count,
                  'step': s.step, 'rng': s.rng},
    }


def save(manager: Any, state: step_lib.TrainState, meta: dict[str, Any]) -> None:
    """Write one atomic step directory. Every process calls it (orbax writes host arrays once, on
    the primary process, and synchronises the others)."""
    import orbax.checkpoint as ocp
    args = {k: ocp.args.StandardSave(v) for k, v in _state_items(state).items()}
    manager.save(int(meta['step']), args=ocp.args.Composite(**args, meta=ocp.args.JsonSave(meta)), force=True)
    manager.wait_until_finished()


def restore(manager: Any, template: step_lib.TrainState, step: int | None = None
            ) -> tuple[step_lib.TrainState, dict[str, Any]]:
    """(state, meta) of a step (default: the latest), shaped like `template` (a freshly built state)."""
    import flax
    import orbax.checkpoint as ocp
    step = manager.latest_step() if step is None else step
    names = ('G_ema', 'G', 'D', 'state')
    try:
        r = manager.restore(step, args=ocp.args.Composite(**{k: ocp.args.StandardRestore() for k in names},
                                                            meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for damaged or foreign directories
        raise TrainingError(f'{manager.directory}/{step}: cannot restore checkpoint '
                            f'({type(e).__name__}: {str(e).splitlines()[0][:200]})') from None
    st = r['state']
    as_j = lambda t: jax.tree_util.tree_map(jnp.asarray, t)  # noqa: E731
    state = template.replace(
        g_params=as_j(r['G']['params']), g_buffers=as_j(r['G'].get('buffers', {})),
        d_params=as_j(r['D']['params']), ema_params=as_j(r['G_ema']['params']),
        ema_buffers=as_j(r['G_ema'].get('buffers', {})),
        g_opt=flax.serialization.from_state_dict(template.g_opt, as_j(st['g_opt'])),
        d_opt=flax.serialization.from_state_dict(template.d_opt, as_j(st['d_opt'])),
        pl_mean=jnp.asarray(st['pl_mean'], jnp.float32), ada_p=jnp.asarray(st['ada_p'], jnp.float32),
        ada_sum=jnp.asarray(st['ada_sum'], jnp.float32), ada_count=jnp.asarray(st['ada_count'], jnp.float32),
        step=jnp.asarray(st['step'], jnp.int32), rng=jnp.asarray(st['rng'], template.rng.dtype))
    mismatch = [k for k in ('g_params', 'd_params') if jax.tree_util.tree_structure(getattr(state, k))
                != jax.tree_util.tree_structure(getattr(template, k))
                or any(a.shape != b.shape for a, b in zip(jax.tree_util.tree_leaves(getattr(state, k)),
                                                           jax.tree_util.tree_leaves(getattr(template, k))))]
    if mismatch:
        raise TrainingError(f'{manager.directory}/{step}: checkpoint does not match the configured networks '
                            f'({", ".join(mismatch)} differ); use a new --workdir or the same config')
    return state, dict(r['meta'])


def steps_to_delete(steps: Iterable[int], keep: int, best: int | None = None) -> list[int]:
    """Snapshots that the policy drops: none when keep <= 0 (keep all), else all but the last `keep`
    and `best` (the best-FID step, when there is one)."""
    steps = sorted(steps)
    if keep <= 0:
        return []
    kept = set(steps[-keep:]) | ({best} if best is not None else set())
    return [s for s in steps if s not in kept]


def prune(manager: Any, keep: int, best: int | None = None) -> list[int]:
    """Delete the snapshots `steps_to_delete` names (every process calls it); returns them."""
    drop = steps_to_delete(manager.all_steps(), keep, best)
    for s in drop:
        manager.delete(s)
    return drop


def check_network_json(workdir: pathlib.Path, cfg: networks.NetworkConfig) -> None:
    """Refuse a workdir that holds a run of another network config (one line naming the differences)."""
    if not (workdir / ckpt_lib.NETWORK_JSON).is_file():
        return
    try:
        old, _ = ckpt_lib.read_network_json(workdir)
    except ckpt_lib.CheckpointError as e:
        raise TrainingError(str(e)) from None
    if old != cfg:
        diff = [f'{k}: {getattr(old, k)} -> {getattr(cfg, k)}' for k in dataclasses.asdict(cfg)
                if getattr(old, k) != getattr(cfg, k)]
        raise TrainingError(f'{workdir}: holds a run with another network config ({"; ".join(diff)}); '
                            'use a new --workdir')
