"""StyleGAN2-ADA `--cfg=paper512`: the paper's 512x512 setting (AFHQ, BreCaHAD, MetFaces at 512).

    python run_train.py --config configs/paper512.py --workdir runs/paper512 \
        --config.data.path=/data/afhq512_tfds [--config.data.xflip=True]

Reference: stylegan2-ada-pytorch train.py, cfg_specs['paper512']:
ref_gpus 8, kimg 25000, mb 64, mbstd 8, fmaps 1, lrate 0.0025, gamma 0.5, ema 20, ramp None, map 8.
That is configs/paper256.py with twice the channels (channel_base 32768) and half the R1 weight.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'paper256')
    c.model.update(img_resolution=512, channel_base=32768)
    c.data.update(resolution=512)
    c.train.update(r1_gamma=0.5)
    return c
