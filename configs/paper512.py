"""StyleGAN2-ADA `--cfg=paper512`: the reference's 512x512 configuration (AFHQ, BreCaHAD in the paper).

    python run_train.py --config configs/paper512.py --workdir runs/paper512 \
        --config.data.path=/data/afhq512_tfds [--config.data.xflip=True]

Reference: NVlabs/stylegan2-ada-pytorch, train.py, setup_training_loop_kwargs(), cfg_specs:

    'paper512': dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5,
                     ema=20, ramp=None, map=8)

and what train.py derives for every cfg: channel_base = fmaps * 32768 = 32768, channel_max 512, z/w 512,
num_fp16_res 4 and conv_clamp 256 for G and D, Adam betas (0, 0.99) eps 1e-8, batch_gpu = mb / ref_gpus
= 8 (the minibatch-stddev / path-length / RNG chunk here), ema_rampup None (0 here = off). train.py
defaults: --aug=ada (target 0.6, augpipe bgc), --mirror=False, snapshots and fid50k_full every 200 kimg.
The 4 highest resolutions are computed in model.mixed_dtype (reference: float16).

data.path is required (a TFDS directory from `data-prep build`, or set data.source='folder').
"""
from ml_collections import config_dict

from stylegan_jax.train.loop import default_config


def get_config():
    c = default_config()
    c.seed = 0
    c.model.update(z_dim=512, w_dim=512, c_dim=0, img_resolution=512, mapping_layers=8, channel_base=32768,
                   channel_max=512, num_fp16_res=4, mixed_dtype='bfloat16', conv_clamp=256.0, mbstd_group_size=8,
                   mbstd_num_channels=1)
    c.data.update(source='tfds', resolution=512, xflip=False)
    c.data.path = config_dict.placeholder(str)  # required: run_train.py stops with a one-line error if unset
    c.train.update(batch=64, batch_gpu=8, total_kimg=25_000.0, g_lr=0.0025, d_lr=0.0025, r1_gamma=0.5,
                   ema_kimg=20.0, ema_rampup=0.0, pl_weight=2.0, style_mixing_prob=0.9, g_reg_interval=4,
                   d_reg_interval=16, freeze_d=0)
    c.ada.update(mode='adaptive', augpipe='bgc', p=0.0, target=0.6, interval=4, kimg=500.0)
    c.log.update(checkpoint_kimg=200.0, grid_kimg=200.0, fid_kimg=200.0, fid_num_fake=50_000)
    return c
