"""The reference's `train.py --cfg=auto` formulas (stylegan2-ada-pytorch `setup_training_loop_kwargs`).

Jax-free: configs/auto.py imports it, and `run_config` uses it for `train.r1_gamma=-1` and
`train.ema_kimg=-1`. The reference derives, from the dataset resolution `res` and the GPU count `gpus`:

    mb    = max(min(gpus * min(4096 // res, 32), 64), gpus)     batch (keeps GPU memory in bounds)
    mbstd = min(mb // gpus, 4)                                    minibatch-stddev group
    fmaps = 1 if res >= 512 else 0.5                              channel_base = fmaps * 32768
    lrate = 0.002 if res >= 1024 else 0.0025
    gamma = 0.0002 * res ** 2 / mb                                R1 weight
    ema   = mb * 10 / 32                                          G EMA half-life in kimg
    ramp  = 0.05, map = 2                                         EMA ramp-up, mapping layers

gamma and ema use the spec's batch `mb`, not an overridden one (`train.py --batch` changes the batch
but keeps gamma and ema), so `-1` here means "what --cfg=auto would use on this many devices".
"""
from __future__ import annotations

import dataclasses

__all__ = ['AutoSpec', 'auto_spec', 'auto_r1_gamma', 'auto_ema_kimg', 'RESUME_ADA_KIMG', 'SCRATCH_ADA_KIMG',
           'AUTO_EMA_RAMPUP']

SCRATCH_ADA_KIMG = 500.0   # training_loop.py ada_kimg default
RESUME_ADA_KIMG = 100.0    # train.py when resuming from a pickle: "make ADA react faster at the beginning"
AUTO_EMA_RAMPUP = 0.05     # cfg 'auto' (and 'cifar') ramp; train.py disables it when resuming


@dataclasses.dataclass(frozen=True)
class AutoSpec:
    """One row of the reference's cfg_specs, as `--cfg=auto` fills it in."""
    gpus: int
    mb: int
    mbstd: int
    fmaps: float
    lrate: float
    gamma: float
    ema: float
    ramp: float = AUTO_EMA_RAMPUP
    map: int = 2

    @property
    def channel_base(self) -> int:
        return int(self.fmaps * 32768)

    @property
    def batch_gpu(self) -> int:
        return self.mb // self.gpus


def _check(resolution: int, gpus: int) -> None:
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f'resolution must be a power of two >= 4, got {resolution}')
    if gpus < 1:
        raise ValueError(f'the device count must be >= 1, got {gpus}')


def auto_batch(resolution: int, gpus: int) -> int:
    """The spec batch `mb` of --cfg=auto."""
    _check(resolution, gpus)
    return max(min(gpus * min(4096 // resolution, 32), 64), gpus)


def auto_r1_gamma(resolution: int, gpus: int) -> float:
    """R1 gamma of --cfg=auto: 0.0002 * res^2 / mb (mb: the spec batch for this resolution and device count)."""
    return 0.0002 * resolution ** 2 / auto_batch(resolution, gpus)


def auto_ema_kimg(resolution: int, gpus: int) -> float:
    """G EMA half-life of --cfg=auto: mb * 10 / 32 kimg."""
    return auto_batch(resolution, gpus) * 10 / 32


def auto_spec(resolution: int, gpus: int = 1) -> AutoSpec:
    """Every value `train.py --cfg=auto --gpus=GPUS` derives for a dataset of this resolution."""
    mb = auto_batch(resolution, gpus)
    return AutoSpec(gpus=gpus, mb=mb, mbstd=min(mb // gpus, 4), fmaps=1.0 if resolution >= 512 else 0.5,
                    lrate=0.002 if resolution >= 1024 else 0.0025, gamma=auto_r1_gamma(resolution, gpus),
                    ema=auto_ema_kimg(resolution, gpus))
