"""StyleGAN2-ADA `--cfg=auto` (train.py's default): settings computed from the resolution and GPU count.

    python run_train.py --config configs/auto.py:512,8 --workdir runs/auto512 --config.data.path=/data/x512_tfds
    python run_train.py --config configs/auto.py:256 --workdir runs/auto256 --config.data.path=/data/x256_tfds

The argument after ':' is RESOLUTION[,DEVICES] (default 256,1; DEVICES = the reference's --gpus, i.e.
jax.device_count() of the run). From them, as train.py (stylegan_jax/train/specs.py has the formulas):
batch mb = max(min(gpus * min(4096 // res, 32), 64), gpus), mbstd = min(mb // gpus, 4), fmaps 1 at
res >= 512 else 0.5, lrate 0.002 at res >= 1024 else 0.0025, gamma = 0.0002 res^2 / mb,
ema = mb * 10 / 32, ramp 0.05, map 2, batch_gpu = mb / gpus. Everything else as configs/stylegan2.py
(what train.py sets for every cfg). As in the reference, gamma and ema stay at these values when
`--config.train.batch` changes the batch.
"""
from stylegan_jax.train import specs
from stylegan_jax.train.config_files import base


def get_config(arg: str = '256,1'):
    parts = [p.strip() for p in str(arg).split(',')]
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f'configs/auto.py:{arg}: expected RESOLUTION[,DEVICES], e.g. configs/auto.py:512,8')
    res, gpus = int(parts[0]), int(parts[1]) if len(parts) > 1 else 1
    s = specs.auto_spec(res, gpus)
    c = base(__file__, 'stylegan2')
    c.model.update(img_resolution=res, mapping_layers=s.map, channel_base=s.channel_base, mbstd_group_size=s.mbstd)
    c.data.update(resolution=res)
    c.train.update(batch=s.mb, batch_gpu=s.batch_gpu, g_lr=s.lrate, d_lr=s.lrate, r1_gamma=s.gamma, ema_kimg=s.ema,
                   ema_rampup=-1.0)  # -1: the spec's 0.05, off when transferring (train.py --resume)
    return c
