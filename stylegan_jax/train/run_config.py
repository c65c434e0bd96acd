"""A training config (configs/default.py's schema) -> the network and optimisation settings.

`network_config(config)` and `train_config(config, cfg, num_devices)` turn config.model / config.train /
config.ada into the frozen dataclasses the networks and the step use, resolving the reference's
automatic values (-1):

* train.r1_gamma, train.ema_kimg: cfg 'auto' for data.resolution on `num_devices` devices
  (`specs.auto_r1_gamma`, `specs.auto_ema_kimg`; the spec batch, not train.batch);
* train.ema_rampup: 0.05 (cfg 'auto'), or off when the run starts from another network
  (transfer.path), as train.py's `--resume` does;
* ada.kimg: 500, or 100 when the run starts from another network (train.py `--resume`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from stylegan_jax import networks
from stylegan_jax.train import augment as aug
from stylegan_jax.train import losses
from stylegan_jax.train import specs
from stylegan_jax.train import step as step_lib
from stylegan_jax.train.errors import TrainingError

__all__ = ['AutoValues', 'auto_values', 'network_config', 'train_config', 'transferring']

ADA_MODES = ('adaptive', 'fixed', 'off')
NONFINITE = ('skip', 'nan_to_num')
# Model keys where a value <= 0 (0 or -1 in the schema) means None in NetworkConfig.
_NONE_IF_NOT_POSITIVE = ('conv_clamp', 'mbstd_group_size', 'd_cmap_dim')
_NONE_IF_NEGATIVE = ('d_num_fp16_res',)


def network_config(config: Any) -> networks.NetworkConfig:
    """NetworkConfig from config.model (unknown keys are an error); the resolution must equal data.resolution."""
    d = dict(config.model.to_dict() if hasattr(config.model, 'to_dict') else config.model)
    d.setdefault('img_resolution', int(config.data.resolution))
    if int(d['img_resolution']) != int(config.data.resolution):
        raise TrainingError(f'model.img_resolution {d["img_resolution"]} != data.resolution {config.data.resolution}')
    for k in _NONE_IF_NOT_POSITIVE:
        if k in d and d[k] is not None and d[k] <= 0:
            d[k] = None
    for k in _NONE_IF_NEGATIVE:
        if k in d and d[k] is not None and d[k] < 0:
            d[k] = None
    try:
        return networks.NetworkConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise TrainingError(f'config.model: {e}') from None


def transferring(config: Any) -> bool:
    """True when the run starts from another network (transfer.path set)."""
    return bool(config.transfer.path) if 'transfer' in config else False


@dataclasses.dataclass(frozen=True)
class AutoValues:
    """The resolved values of the keys whose -1 means 'automatic', and which of them were automatic."""
    r1_gamma: float
    ema_kimg: float
    ema_rampup: float | None
    ada_kimg: float
    automatic: tuple[str, ...]   # config keys that were -1


def auto_values(config: Any, resolution: int, num_devices: int) -> AutoValues:
    """Resolve train.r1_gamma, train.ema_kimg, train.ema_rampup and ada.kimg (see the module docstring)."""
    t, a = config.train, config.ada
    resume = transferring(config)
    auto: list[str] = []

    def pick(key: str, value: float, automatic: float | None) -> float | None:
        if value == -1:
            auto.append(key)
            return automatic
        if value < 0:
            raise TrainingError(f'{key} must be >= 0 or -1 (automatic), got {value:g}')
        return value

    r1 = pick('train.r1_gamma', float(t.r1_gamma), specs.auto_r1_gamma(resolution, num_devices))
    ema = pick('train.ema_kimg', float(t.ema_kimg), specs.auto_ema_kimg(resolution, num_devices))
    ramp = pick('train.ema_rampup', float(t.ema_rampup), None if resume else specs.AUTO_EMA_RAMPUP)
    ada_kimg = pick('ada.kimg', float(a.kimg), specs.RESUME_ADA_KIMG if resume else specs.SCRATCH_ADA_KIMG)
    return AutoValues(r1_gamma=r1, ema_kimg=ema, ema_rampup=ramp or None, ada_kimg=ada_kimg, automatic=tuple(auto))


def train_config(config: Any, cfg: networks.NetworkConfig, num_devices: int | None = None) -> step_lib.TrainConfig:
    """TrainConfig from config.train / config.ada; `num_devices` (default: all devices of the run) is the
    reference's GPU count for the automatic values."""
    if num_devices is None:
        import jax
        num_devices = jax.device_count()
    t, a = config.train, config.ada
    mode = str(a.mode)
    if mode not in ADA_MODES:
        raise TrainingError(f"ada.mode must be 'adaptive', 'fixed' or 'off', got {mode!r}")
    nonfinite = str(t.nonfinite)
    if nonfinite not in NONFINITE:
        raise TrainingError(f"train.nonfinite must be 'skip' or 'nan_to_num', got {nonfinite!r}")
    try:
        spec = None if mode == 'off' or not a.augpipe else aug.AugmentSpec.preset(str(a.augpipe))
    except ValueError as e:
        raise TrainingError(f'ada.augpipe: {e}') from None
    v = auto_values(config, cfg.img_resolution, num_devices)
    lc = losses.LossConfig(r1_gamma=v.r1_gamma, pl_weight=float(t.pl_weight), pl_decay=float(t.pl_decay),
                           pl_batch_shrink=int(t.pl_batch_shrink), style_mixing_prob=float(t.style_mixing_prob),
                           augment_spec=spec)
    return step_lib.TrainConfig(
        batch=int(t.batch), batch_gpu=int(t.batch_gpu) or None, g_lr=float(t.g_lr), d_lr=float(t.d_lr),
        g_reg_interval=int(t.g_reg_interval), d_reg_interval=int(t.d_reg_interval), ema_kimg=v.ema_kimg,
        ema_rampup=v.ema_rampup, ada_target=float(a.target) if mode == 'adaptive' and spec is not None else None,
        ada_interval=int(a.interval), ada_kimg=v.ada_kimg, freeze_d=int(t.freeze_d), nonfinite=nonfinite, loss=lc)
