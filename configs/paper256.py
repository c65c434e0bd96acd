"""StyleGAN2-ADA `--cfg=paper256`: the paper's 256x256 setting (FFHQ, LSUN Cat at 256).

    python run_train.py --config configs/paper256.py --workdir runs/paper256 \
        --config.data.path=/data/ffhq256_tfds [--config.data.xflip=True]

Reference: stylegan2-ada-pytorch train.py, cfg_specs['paper256']:
ref_gpus 8, kimg 25000, mb 64, mbstd 8, fmaps 0.5, lrate 0.0025, gamma 1, ema 20, ramp None, map 8.
Everything else as configs/stylegan2.py (what train.py sets for every cfg): batch_gpu = 64 / 8 = 8,
so 1 device x 64 accumulates 8 rounds of 8 and 8 devices run one round each, the same step.
`--config.data.xflip=True` is `--mirror=1`, as the paper used for FFHQ.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'stylegan2')
    c.model.update(img_resolution=256, channel_base=16384, mbstd_group_size=8)
    c.data.update(resolution=256)
    c.train.update(batch=64, batch_gpu=8, g_lr=0.0025, d_lr=0.0025, r1_gamma=1.0, ema_kimg=20.0)
    return c
