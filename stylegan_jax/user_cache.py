"""Where stylegan-jax keeps what it can recompute: downloads, statistics, converted checkpoints, compiled code.

`cache_dir()` is $STYLEGAN_JAX_CACHE, else ~/.cache/stylegan_jax. Users:
  <cache>/pt_inception-*.pth   FID Inception weights (metrics/inception.py)
  <cache>/fid_stats/           real-set feature statistics (metrics/stats.py)
  <cache>/converted/<sha256>/  checkpoint files converted in memory, by file hash (checkpoint.py)
  <cache>/jax_cache/           JAX's persistent compilation cache (compile_cache.py)
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_ENV = 'STYLEGAN_JAX_CACHE'


def cache_dir() -> Path:
    """$STYLEGAN_JAX_CACHE, else ~/.cache/stylegan_jax (not created here)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / '.cache' / 'stylegan_jax'


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (the key of the file-keyed caches)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
