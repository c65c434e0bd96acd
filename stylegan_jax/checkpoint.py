"""Network checkpoints: orbax trees per network plus a JSON network config, and the any-checkpoint reader.

Layout of a converted checkpoint (what `stylegan-convert` writes):

    DIR/network.json      {"config": NetworkConfig fields, "source": ..., "notes": [...], ...}
    DIR/G_ema/            orbax tree {'params': ..., 'buffers': ...}  (sampling uses this one)
    DIR/G/, DIR/D/        the same for the raw generator and the discriminator, when present

A training workdir keeps `WORKDIR/network.json` and orbax steps in `WORKDIR/checkpoints/<step>/`
whose items include the same `G_ema`, `G` and `D` trees (and `meta/`, JSON with `kimg`).

`load_networks(path, step=, kimg=)` reads any of:
  * a converted checkpoint directory;
  * a training workdir: the latest snapshot, or the one with `step` / `kimg` (`list_snapshots`);
  * a checkpoint FILE: StyleGAN2-ADA `.pkl`, rosinality `.pt`, NVlabs TF `.pkl` (anything
    `stylegan-convert` reads). It is converted in memory and the result is kept in
    `<cache_dir()>/converted/<sha256 of the file>/`, so the next run reads it directly (and a
    changed file is converted again). An unwritable cache only costs the conversion next time.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from typing import Any, Iterable

import numpy as np

from stylegan_jax.cli_errors import CLIError
from stylegan_jax.networks import NetworkConfig

NETWORK_JSON = 'network.json'
NETWORK_ITEMS = ('G_ema', 'G', 'D')
CONVERTED_CACHE = 'converted'
# Bump when the conversion changes what it writes, so old cache entries are not reused.
CONVERTED_CACHE_VERSION = 1
# A requested kimg matches a snapshot within this much (grid file names round kimg to integers).
KIMG_TOLERANCE = 0.5


class CheckpointError(CLIError, ValueError):
    """A checkpoint (file, directory or workdir) is missing, incomplete, unreadable or not ours."""


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
    except NotADirectoryError:
        raise CheckpointError(f'{directory}: not a directory') from None
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


# --------------------------------------------------------------------------- training workdirs

def _snapshot_kimg(step_dir: pathlib.Path, step: int, batch: int | None) -> float | None:
    try:
        meta = json.loads((step_dir / 'meta' / 'metadata').read_text())
        return float(meta['kimg'])
    except (OSError, ValueError, KeyError, TypeError):
        return step * batch / 1000 if batch else None


def list_snapshots(workdir: str | os.PathLike) -> list[tuple[int, float | None, pathlib.Path]]:
    """(step, kimg, directory) of every finished snapshot of a training run, in step order."""
    workdir = pathlib.Path(workdir)
    checkpoints = workdir / 'checkpoints'
    if not checkpoints.is_dir():
        return []
    batch = None
    try:
        batch = int(json.loads((workdir / NETWORK_JSON).read_text())['training']['train']['batch'])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    steps = sorted(int(p.name) for p in checkpoints.iterdir()
                   if p.is_dir() and p.name.isdigit() and (p / 'G_ema').is_dir())
    return [(s, _snapshot_kimg(checkpoints / str(s), s, batch), checkpoints / str(s)) for s in steps]


def _describe(snaps: list[tuple[int, float | None, pathlib.Path]]) -> str:
    shown = [f'step {s}' + (f' (kimg {k:g})' if k is not None else '') for s, k, _ in snaps[-8:]]
    return ', '.join(shown) + (f' and {len(snaps) - 8} earlier' if len(snaps) > 8 else '')


def select_snapshot(workdir: pathlib.Path, step: int | None = None,
                    kimg: float | None = None) -> tuple[int, float | None, pathlib.Path]:
    """The snapshot of a workdir with this step or kimg (default: the latest); CheckpointError if none."""
    snaps = list_snapshots(workdir)
    if not snaps:
        raise CheckpointError(f'{workdir}: no finished checkpoint (neither G_ema/ nor checkpoints/<step>/G_ema/)')
    if step is not None and kimg is not None:
        raise CheckpointError('give --step or --kimg, not both')
    if step is not None:
        found = [s for s in snaps if s[0] == step]
        if not found:
            raise CheckpointError(f'{workdir}: no snapshot at step {step}; available: {_describe(snaps)}')
        return found[0]
    if kimg is not None:
        found = [s for s in snaps if s[1] is not None and abs(s[1] - kimg) <= KIMG_TOLERANCE]
        if not found:
            raise CheckpointError(f'{workdir}: no snapshot at kimg {kimg:g}; available: {_describe(snaps)}')
        return min(found, key=lambda s: abs(s[1] - kimg))
    return snaps[-1]


def find_networks(path: str | os.PathLike, *, step: int | None = None,
                  kimg: float | None = None) -> tuple[pathlib.Path, NetworkConfig, dict[str, Any]]:
    """Directory holding G_ema/G/D of a converted checkpoint or a workdir snapshot (latest by default)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise CheckpointError(f'{path}: no such checkpoint file or directory')
    if path.is_file():
        raise CheckpointError(f'{path}: is a file; use load_networks() to read checkpoint files')
    cfg, info = read_network_json(path)
    if (path / 'G_ema').is_dir():
        if step is not None or kimg is not None:
            raise CheckpointError(f'{path}: a converted checkpoint holds one snapshot; --step/--kimg select '
                                  f'snapshots of a training workdir')
        return path, cfg, info
    s, k, directory = select_snapshot(path, step, kimg)
    return directory, cfg, {**info, 'step_dir': str(directory), 'step': s, 'kimg': k}


def _restore(item: pathlib.Path) -> dict:
    try:
        tree = _checkpointer().restore(item.absolute())
    except Exception as e:  # orbax raises many types for damaged files
        raise CheckpointError(f'{item}: cannot restore ({type(e).__name__}: {str(e).splitlines()[0][:200]})') \
            from None
    return {k: v for k, v in tree.items() if k in ('params', 'buffers')}


# --------------------------------------------------------------------------- checkpoint files

def _convert_file(path: pathlib.Path) -> tuple[NetworkConfig, dict[str, dict], dict[str, Any]]:
    from stylegan_jax.convert import reader

    converted = reader.convert_file(path)
    info = {'source': str(path.absolute()), 'source_format': converted.source_format,
            'notes': converted.notes, 'extra': converted.extra}
    return converted.cfg, converted.variables, info


def converted_cache_dir(path: str | os.PathLike) -> pathlib.Path:
    """Where the conversion of this checkpoint file is cached: `<cache>/converted/<sha256>`."""
    from stylegan_jax.user_cache import cache_dir, sha256_file

    return cache_dir() / CONVERTED_CACHE / f'v{CONVERTED_CACHE_VERSION}-{sha256_file(path)[:40]}'


def _load_file(path: pathlib.Path, which: Iterable[str]) -> tuple[NetworkConfig, dict[str, dict], dict[str, Any]]:
    try:
        cache = converted_cache_dir(path)
    except OSError as e:
        raise CheckpointError(f'{path}: cannot read ({e.strerror or e})') from None
    if (cache / NETWORK_JSON).is_file():
        try:
            cfg, info = read_network_json(cache)
            nets = {w: _restore(cache / w) for w in which if (cache / w).is_dir()}
            return cfg, nets, {**info, 'source': str(path.absolute()), 'converted_cache': str(cache)}
        except CheckpointError:
            pass  # a damaged cache entry is converted again (and replaced below)
    cfg, variables, info = _convert_file(path)
    _store_in_cache(cache, cfg, variables, info)
    return cfg, {w: v for w, v in variables.items() if w in which}, {**info, 'converted_cache': str(cache)}


def _store_in_cache(cache: pathlib.Path, cfg: NetworkConfig, variables: dict[str, dict], info: dict) -> None:
    """Write the conversion next to its final place, then rename (readers never see half an entry)."""
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=cache.name + '.', suffix='.tmp', dir=cache.parent))
        save_networks(tmp / 'c', cfg, variables, info)
        if cache.exists():
            shutil.rmtree(cache, ignore_errors=True)
        os.replace(tmp / 'c', cache)
    except OSError:
        pass  # caching is an optimisation only
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- the readers

def load_networks(path: str | os.PathLike, *, step: int | None = None, kimg: float | None = None,
                  which: Iterable[str] = NETWORK_ITEMS) -> tuple[NetworkConfig, dict[str, dict], dict[str, Any]]:
    """(config, {'G_ema', 'G', 'D': variables (those present among `which`)}, info) from any checkpoint.

    `path`: a checkpoint file (.pkl/.pt, any format `stylegan-convert` reads), a converted
    directory, or a training workdir (`step` / `kimg` pick a snapshot; default the latest).
    `info` holds network.json's extra fields plus, for workdirs, `step`, `kimg` and `step_dir`.
    """
    which = tuple(which)
    p = pathlib.Path(path)
    if p.is_file():
        if step is not None or kimg is not None:
            raise CheckpointError(f'{p}: a checkpoint file holds one snapshot; --step/--kimg select snapshots of '
                                  f'a training workdir')
        cfg, nets, info = _load_file(p, which)
    else:
        directory, cfg, info = find_networks(p, step=step, kimg=kimg)
        nets = {w: _restore(directory / w) for w in which if (directory / w).is_dir()}
    if not nets:
        raise CheckpointError(f'{path}: checkpoint has none of the networks {", ".join(which)}')
    return cfg, nets, info


def load_network(path: str | os.PathLike, which: str = 'G_ema', *, step: int | None = None,
                 kimg: float | None = None) -> tuple[NetworkConfig, dict, dict[str, Any]]:
    """(config, variables {'params', 'buffers'}, info) of one network from any checkpoint (see load_networks)."""
    cfg, nets, info = load_networks(path, step=step, kimg=kimg, which=(which,))
    if which not in nets:
        raise CheckpointError(f'{path}: checkpoint has no {which} network')
    return cfg, nets[which], info
