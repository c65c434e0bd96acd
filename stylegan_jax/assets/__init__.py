"""Files shipped with the package: the pretrained demo model, and how it is made and checked.

``demo_portraits32/`` is a converted checkpoint (``network.json`` + orbax ``G_ema/``, ``G/``,
``D/``, as `stylegan-convert` writes) of a 32x32 StyleGAN2 trained by this project on the built-in
anime-like portraits (configs/demo_pretrain.py), plus ``SHA256SUMS``, one line per file. It is the
source model of the transfer demo (configs/demo.py). Rebuild it with

    python run_train.py --config configs/demo_pretrain.py --workdir runs/demo_pretrain
    python -m stylegan_jax.assets export runs/demo_pretrain --out stylegan_jax/assets/demo_portraits32

(the output folder must not exist or be empty: nothing is overwritten) and check a copy with
``python -m stylegan_jax.assets verify [DIR]``.

This module imports nothing heavy, so config files can call `demo_model_path()`.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
from typing import Any

__all__ = ['DEMO_MODEL', 'CHECKSUMS', 'demo_model_path', 'write_checksums', 'verify_checksums',
           'export_workdir']

DEMO_MODEL = 'demo_portraits32'
CHECKSUMS = 'SHA256SUMS'


def demo_model_path(verify: bool = False) -> pathlib.Path:
    """The shipped demo model's directory (inside the installed package, whatever the cwd).

    With ``verify``, its files are checked against SHA256SUMS first (`verify_checksums`).
    """
    path = pathlib.Path(__file__).resolve().parent / DEMO_MODEL
    if verify:
        verify_checksums(path)
    return path


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _files(directory: pathlib.Path) -> list[str]:
    """Every file under ``directory`` but the checksum file, as sorted POSIX relative paths."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob('*')
                  if p.is_file() and p.name != CHECKSUMS and '__pycache__' not in p.parts)


def write_checksums(directory: str | os.PathLike) -> pathlib.Path:
    """Write DIRECTORY/SHA256SUMS (`sha256sum` format: '<hex>  <relative path>', sorted)."""
    directory = pathlib.Path(directory)
    lines = [f'{_sha256(directory / name)}  {name}\n' for name in _files(directory)]
    out = directory / CHECKSUMS
    tmp = out.with_suffix('.tmp')
    tmp.write_text(''.join(lines))
    os.replace(tmp, out)
    return out


def verify_checksums(directory: str | os.PathLike) -> int:
    """Check every file of DIRECTORY against its SHA256SUMS; return the number of files checked.

    Raises ValueError naming the directory and the first missing, changed or unlisted file.
    """
    directory = pathlib.Path(directory)
    sums = directory / CHECKSUMS
    if not sums.is_file():
        raise ValueError(f'{directory}: no {CHECKSUMS} (not a shipped model directory, or an incomplete copy)')
    want: dict[str, str] = {}
    for n, line in enumerate(sums.read_text().splitlines(), 1):
        digest, sep, name = line.partition('  ')
        if not sep or len(digest) != 64:
            raise ValueError(f'{sums}:{n}: not a sha256sum line')
        want[name] = digest
    for name, digest in want.items():
        path = directory / name
        if not path.is_file():
            raise ValueError(f'{directory}: {name} is missing (listed in {CHECKSUMS})')
        if _sha256(path) != digest:
            raise ValueError(f'{directory}: {name} does not match its SHA-256 in {CHECKSUMS} (changed or damaged)')
    extra = [name for name in _files(directory) if name not in want]
    if extra:
        raise ValueError(f'{directory}: {extra[0]} is not listed in {CHECKSUMS}')
    return len(want)


def export_workdir(workdir: str | os.PathLike, out: str | os.PathLike, note: str = '') -> pathlib.Path:
    """Write a training workdir's latest G_ema, G and D as a converted checkpoint + SHA256SUMS.

    ``network.json`` records the source workdir, its step and kimg and the training config. The
    output directory must not exist or be empty (`checkpoint.save_networks` refuses otherwise).
    """
    from stylegan_jax import checkpoint
    cfg, variables, info = checkpoint.load_networks(workdir)
    notes = [f'exported from {pathlib.Path(workdir).name} step {info.get("step", "?")}, '
             f'kimg {info.get("kimg", "?")}'] + ([note] if note else [])
    checkpoint.save_networks(out, cfg, variables, {
        'source': 'stylegan-jax training workdir (python -m stylegan_jax.assets export)',
        'format': 'stylegan-jax', 'notes': notes, 'training': info.get('training', {})})
    write_checksums(out)
    return pathlib.Path(out)
