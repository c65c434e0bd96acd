"""What a data path holds, for training and metrics alike (jax-free): image files and TFDS directories.

Training (`train/input_pipeline.py`) and the metrics (`metrics/sources.py`, e.g. FID against
`data.path` during training) read the same path in one run, so they share one extension list and one
rule for finding the TFDS dataset in a directory.
"""
from __future__ import annotations

import os
import pathlib

from stylegan_jax.cli_errors import CLIError

__all__ = ['IMAGE_EXTENSIONS', 'DataPathError', 'find_tfds_dir']

# Every image type both readers decode (training decodes the non-TF ones with Pillow).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.tif', '.tiff')


class DataPathError(CLIError, ValueError):
    """A data directory is ambiguous (several TFDS datasets in it); the message names it."""


def _version_key(p: pathlib.Path) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in p.name.split('.'))


def find_tfds_dir(path: str | os.PathLike) -> pathlib.Path | None:
    """The TFDS version directory (holding dataset_info.json) that `path` names, or None if it holds none.

    `path` may be the version directory itself, a dataset directory (its versions one level below) or
    a data_dir (dataset/version two levels below). One dataset with several versions: the highest
    version (`data-prep build` of a newer version is what a rerun should see). Several datasets in one
    data_dir: DataPathError, since which one is meant is not known.
    """
    path = pathlib.Path(path)
    if not path.is_dir():
        return None
    if (path / 'dataset_info.json').is_file():
        return path
    for depth in (1, 2):
        hits = sorted(p.parent for p in path.glob('/'.join(['*'] * depth) + '/dataset_info.json'))
        if not hits:
            continue
        datasets = sorted({h.parent for h in hits}) if depth == 2 else [path]
        if len(datasets) > 1:
            raise DataPathError(f'{path}: holds several TFDS datasets ({", ".join(d.name for d in datasets)}); '
                                'point at one of them')
        return max(hits, key=_version_key)
    return None
