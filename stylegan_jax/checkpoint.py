"""Network checkpoints on disk: orbax trees per network plus a JSON network config.

Layout of a converted checkpoint (what `stylegan-convert` writes):

    DIR/network.json      {"config": NetworkConfig fields, "source": ..., "notes": [...], ...}
    DIR/G_ema/            orbax tree {'params': ..., 'buffers': ...}  (sampling uses this one)
    DIR/G/, DIR/D/        the same for the raw generator and the discriminator, when present

A training workdir keeps `WORKDIR/network.json` and orbax steps in `WORKDIR/checkpoints/<step>/`
whose items include the same `G_ema`, `G` and `D` trees, so sampling, metrics and transfer learning
read a converted checkpoint and a training run alike (`find_networks`).
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import numpy as np

from stylegan_jax.networks import NetworkConfig

NETWORK_JSON = 'network.json'
NETWORK_ITEMS = ('G_ema', 'G', 'D')


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete or not ours."""


def _checkpointer() -> Any:
    import orbax.checkpoint as ocp  # imported lazily: it is slow to import and not needed for config reads
    return ocp.StandardCheckpointer()


def write_network_json(directory: str | os.PathLike, cfg: NetworkConfig, info: dict[str, Any]) -> None:
    """Write DIR/network.json atomically."""
    path = pathlib.Path(directory) / NETWORK_JSON
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps({'config': json.loads(cfg.to_json()), **info}, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_network_json(directory: str | os.PathLike) -> tuple[NetworkConfig, dict[str, Any]]:
    """(config, the rest of the JSON) from DIR/network.json."""
    path = pathlib.Path(directory) / NETWORK_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f'{directory}: no {NETWORK_JSON} (not a converted checkpoint or training workdir)') \
            from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f'{path}: not valid JSON ({e})') from None
    try:
        cfg = NetworkConfig.from_dict(data.pop('config'))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f'{path}: bad network config ({e})') from None
    return cfg, data


def save_networks(directory: str | os.PathLike, cfg: NetworkConfig, variables: dict[str, dict],
                  info: dict[str, Any]) -> None:
    """Write a converted checkpoint. Refuses a non-empty directory (never overwrites data)."""
    directory = pathlib.Path(directory).absolute()
    if directory.exists() and any(directory.iterdir()):
        raise CheckpointError(f'{directory}: output directory exists and is not empty (choose a new one)')
    directory.mkdir(parents=True, exist_ok=True)
    ckpt = _checkpointer()
    for name, tree in variables.items():
        ckpt.save(directory / name, _to_numpy(tree))
    ckpt.wait_until_finished()
    write_network_json(directory, cfg, {**info, 'networks': sorted(variables)})


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, dict) or hasattr(tree, 'items'):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


def latest_step_dir(checkpoints: pathlib.Path) -> pathlib.Path | None:
    """The highest-numbered finished step directory under a training run's checkpoints/ folder."""
    if not checkpoints.is_dir():
        return None
    steps = [p for p in checkpoints.iterdir() if p.is_dir() and p.name.isdigit() and (p / 'G_ema').is_dir()]
    return max(steps, key=lambda p: int(p.name)) if steps else None


def find_networks(path: str | os.PathLike) -> tuple[pathlib.Path, NetworkConfig, dict[str, Any]]:
    """Directory holding G_ema/G/D for a converted checkpoint or a training workdir (latest step)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise CheckpointError(f'{path}: no such checkpoint directory')
    cfg, info = read_network_json(path)
    if (path / 'G_ema').is_dir():
        return path, cfg, info
    step = latest_step_dir(path / 'checkpoints')
    if step is None:
        raise CheckpointError(f'{path}: no finished checkpoint (neither G_ema/ nor checkpoints/<step>/G_ema/)')
    info = {**info, 'step_dir': str(step)}
    return step, cfg, info


def load_network(path: str | os.PathLike, which: str = 'G_ema') -> tuple[NetworkConfig, dict, dict[str, Any]]:
    """(config, variables {'params', 'buffers'}, info) of one network from a checkpoint or workdir."""
    directory, cfg, info = find_networks(path)
    item = directory / which
    if not item.is_dir():
        raise CheckpointError(f'{path}: checkpoint has no {which} network')
    try:
        tree = _checkpointer().restore(item.absolute())
    except Exception as e:  # orbax raises many types for damaged files
        raise CheckpointError(f'{item}: cannot restore ({type(e).__name__}: {str(e).splitlines()[0][:200]})') \
            from None
    tree = {k: v for k, v in tree.items() if k in ('params', 'buffers')}
    return cfg, tree, info
