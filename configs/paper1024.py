"""StyleGAN2-ADA `--cfg=paper1024`: the paper's 1024x1024 setting (FFHQ, MetFaces at 1024).

    python run_train.py --config configs/paper1024.py --workdir runs/paper1024 \
        --config.data.path=/data/ffhq1024_tfds [--config.data.xflip=True]

Reference: stylegan2-ada-pytorch train.py, cfg_specs['paper1024']:
ref_gpus 8, kimg 25000, mb 32, mbstd 4, fmaps 1, lrate 0.002, gamma 2, ema 10, ramp None, map 8.
That is configs/stylegan2.py with R1 gamma 2 instead of 10.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'stylegan2')
    c.train.update(r1_gamma=2.0)
    return c
