"""StyleGAN2-ADA `--cfg=cifar`: the paper's CIFAR-10 setting (32x32).

    python run_train.py --config configs/cifar.py --workdir runs/cifar \
        --config.data.path=/data/cifar10_tfds [--config.model.c_dim=10]

Reference: stylegan2-ada-pytorch train.py, cfg_specs['cifar']:
ref_gpus 2, kimg 100000, mb 64, mbstd 32, fmaps 1, lrate 0.0025, gamma 0.01, ema 500, ramp 0.05, map 2,
and for this cfg only: no path-length regularisation (pl_weight 0), no style mixing, and the 'orig'
discriminator (no residual connections). batch_gpu = 64 / 2 = 32. The paper trained it conditionally
(`--cond=1`: set model.c_dim to the number of classes; the folder source reads dataset.json labels).
ema_rampup -1 keeps the spec's 0.05 from scratch and turns it off when transferring, as train.py.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'stylegan2')
    c.model.update(img_resolution=32, mapping_layers=2, mbstd_group_size=32, d_architecture='orig')
    c.data.update(resolution=32)
    c.train.update(batch=64, batch_gpu=32, total_kimg=100_000.0, g_lr=0.0025, d_lr=0.0025, r1_gamma=0.01,
                   ema_kimg=500.0, ema_rampup=-1.0, pl_weight=0.0, style_mixing_prob=0.0)
    return c
