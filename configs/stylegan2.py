"""StyleGAN2-ADA `--cfg=stylegan2`: config F of StyleGAN2 (1024x1024 FFHQ), with mixed precision.

    python run_train.py --config configs/stylegan2.py --workdir runs/sg2 --config.data.path=/data/ffhq1024_tfds

Reference: stylegan2-ada-pytorch train.py, cfg_specs['stylegan2']:
ref_gpus 8, kimg 25000, mb 32, mbstd 4, fmaps 1, lrate 0.002, gamma 10, ema 10, ramp None, map 8.

This file is also the root of the reference family (paper256, paper512, paper1024, cifar, auto): it
holds what train.py sets for every cfg besides the spec. Mixed precision in the 4 highest
resolutions with conv_clamp 256 (the reference uses float16; bfloat16 here runs on TPU, A100+ and
CPU; `--config.model.mixed_dtype=float16` is the reference's choice on T4/V100), non-finite gradients
replaced as the reference does (nan_to_num), batch_gpu = mb / ref_gpus, and fid50k_full at every
snapshot (200 kimg = 50 ticks of 4 kimg; 'FID skipped' when no Inception weights are available).
data.path is required (a TFDS directory from `data-prep build`, or set data.source='folder').
"""
from ml_collections import config_dict

from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'default')
    c.model.update(img_resolution=1024, mapping_layers=8, channel_base=32768, num_fp16_res=4)
    c.data.update(resolution=1024)
    c.data.path = config_dict.placeholder(str)  # required: run_train.py stops with a one-line error if unset
    c.train.update(batch=32, batch_gpu=4, g_lr=0.002, d_lr=0.002, r1_gamma=10.0, ema_kimg=10.0, ema_rampup=0.0,
                   nonfinite='nan_to_num')
    c.log.update(fid_kimg=200.0)
    return c
