"""JAX's persistent compilation cache, so a second run on the same network skips XLA compilation.

`enable()` points `jax_compilation_cache_dir` at `<cache_dir()>/jax_cache` (see user_cache.py)
and lowers JAX's thresholds (by default only compilations over 1 s are written) so that the many
small CPU compilations of sampling are cached too. Every stylegan command calls it at start-up.
Set STYLEGAN_JAX_NO_COMPILE_CACHE=1 to turn it off; JAX_COMPILATION_CACHE_DIR, when set, wins
over our default directory. Entries are keyed by JAX on the computation, the jax/jaxlib version
and the device, so a stale entry is never used.
"""
from __future__ import annotations

import os

from stylegan_jax.user_cache import cache_dir

DISABLE_ENV = 'STYLEGAN_JAX_NO_COMPILE_CACHE'


def enabled_by_env() -> bool:
    """False when STYLEGAN_JAX_NO_COMPILE_CACHE is set to anything but '', '0' or 'false'."""
    return os.environ.get(DISABLE_ENV, '').strip().lower() in ('', '0', 'false', 'no')


def enable(directory: str | os.PathLike | None = None) -> str | None:
    """Turn the persistent compilation cache on; returns its directory, or None when disabled.

    A directory that cannot be created only disables the cache (a warning-free None): caching is
    an optimisation and never a reason for a command to fail.
    """
    if not enabled_by_env():
        return None
    import jax

    path = os.fspath(directory or os.environ.get('JAX_COMPILATION_CACHE_DIR') or cache_dir() / 'jax_cache')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    jax.config.update('jax_compilation_cache_dir', path)
    # Defaults skip compilations under 1 s; on CPU most sampling graphs compile faster than that.
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
    return path
