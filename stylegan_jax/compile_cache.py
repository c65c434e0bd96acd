"""Compilation settings every stylegan command starts with: XLA:CPU compiler flags and JAX's
persistent compilation cache, so a second run on the same network skips XLA compilation.

`enable()` first adds `XLA_CPU_FLAGS` to XLA_FLAGS (see `configure_xla_cpu`), then points
`jax_compilation_cache_dir` at `<cache_dir()>/jax_cache` (see user_cache.py) and lowers JAX's thresholds (by default only compilations over 1 s are written) so that the many
small CPU compilations of sampling are cached too. Every stylegan command calls it at start-up.
Set STYLEGAN_JAX_NO_COMPILE_CACHE=1 to turn it off; JAX_COMPILATION_CACHE_DIR, when set, wins
over our default directory. Entries are keyed by JAX on the computation, the jax/jaxlib version
and the device, so a stale entry is never used.
"""
from __future__ import annotations

import os
from typing import MutableMapping

from stylegan_jax.user_cache import cache_dir

DISABLE_ENV = 'STYLEGAN_JAX_NO_COMPILE_CACHE'

# XLA:CPU's newer fusion emitters need ~0.8 GiB more host memory to compile one training phase at
# 128x128 (peak 1.47 vs 0.66 GiB), keep larger executables (0.63 vs 0.51 GiB) and compile ~30%
# slower, for no faster steps (demo: 8.7 vs 9.0 sec/kimg); measured with jax 0.10.2 on a 2-core EPYC.
XLA_CPU_FLAGS = ('--xla_cpu_use_fusion_emitters=false',)
XLA_CPU_FLAGS_SINCE = (0, 10)  # the oldest jaxlib these flags were tried with


def enabled_by_env() -> bool:
    """False when STYLEGAN_JAX_NO_COMPILE_CACHE is set to anything but '', '0' or 'false'."""
    return os.environ.get(DISABLE_ENV, '').strip().lower() in ('', '0', 'false', 'no')


def _jaxlib_knows_flags() -> bool:
    """XLA aborts the process on an unknown XLA_FLAGS entry: add ours only to jaxlib >= 0.10 (tested)."""
    from importlib import metadata
    try:
        major, minor = (int(x) for x in metadata.version('jaxlib').split('.')[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= XLA_CPU_FLAGS_SINCE


def configure_xla_cpu(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Append `XLA_CPU_FLAGS` to ``environ['XLA_FLAGS']``, except those the user already sets; returns the
    flags added. XLA reads XLA_FLAGS when JAX creates its CPU client, so call this before the first
    computation (a later call changes nothing). Other backends ignore xla_cpu flags."""
    if not _jaxlib_knows_flags():
        return []
    current = environ.get('XLA_FLAGS', '')
    added = [f for f in XLA_CPU_FLAGS if f.split('=')[0] not in current]
    if added:
        environ['XLA_FLAGS'] = ' '.join([current.strip(), *added]).strip()
    return added


def enable(directory: str | os.PathLike | None = None) -> str | None:
    """Apply `configure_xla_cpu`, then turn the persistent compilation cache on; returns its
    directory, or None when the cache is disabled.

    A directory that cannot be created only disables the cache (a warning-free None): caching is
    an optimisation and never a reason for a command to fail.
    """
    configure_xla_cpu()
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
