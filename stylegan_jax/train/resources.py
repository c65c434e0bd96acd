"""Peak memory of the run, for the logs (the reference logs Resources/cpu_mem_gb and peak_gpu_mem_gb)."""
from __future__ import annotations

import resource
import sys
from typing import Any, Sequence

__all__ = ['peak_host_rss_bytes', 'peak_memory_gb']

_GB = 2 ** 30


def peak_host_rss_bytes() -> int:
    """The process's peak resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == 'darwin' else rss * 1024)


def peak_memory_gb(devices: Sequence[Any]) -> dict[str, float]:
    """{'Resources/peak_host_mem_gb': peak RSS, 'Resources/peak_device_mem_gb': the largest peak over
    `devices`}; the device entry only where the backend reports memory statistics (GPU, TPU; not CPU)."""
    out = {'Resources/peak_host_mem_gb': peak_host_rss_bytes() / _GB}
    peaks = []
    for d in devices:
        try:
            stats = d.memory_stats() or {}
        except Exception:  # backends without memory statistics raise (or return None)
            stats = {}
        if 'peak_bytes_in_use' in stats:
            peaks.append(stats['peak_bytes_in_use'])
    if peaks:
        out['Resources/peak_device_mem_gb'] = max(peaks) / _GB
    return out
