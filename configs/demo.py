"""Demo: train a tiny StyleGAN2-ADA on the built-in procedural portraits on a CPU in minutes.

    python run_train.py --config configs/demo.py --workdir /tmp/demo

No download: the 32x32 portrait set is generated into WORKDIR/demo_data. The networks are the
reference architecture scaled down (32x32, <= 64 channels, 2 mapping layers, z/w 64); everything
else (losses, lazy R1/path-length regularisation, style mixing, EMA, ADA) is the full training.
"""
from stylegan_jax.train.loop import default_config


def get_config():
    c = default_config()
    c.seed = 0
    c.model.update(z_dim=64, w_dim=64, img_resolution=32, mapping_layers=2, channel_base=1024, channel_max=64,
                   mbstd_group_size=4)
    c.data.update(source='demo', path='', resolution=32, xflip=True, num_images=512, shuffle_buffer=512)
    c.train.update(batch=16, total_kimg=6.0, g_lr=0.0025, d_lr=0.0025, r1_gamma=-1.0, ema_kimg=-1.0)
    c.ada.update(mode='adaptive', augpipe='bgc', target=0.6, kimg=100.0)
    c.log.update(log_every_steps=25, checkpoint_kimg=2.0, keep_checkpoints=2, grid_kimg=1.0, grid_seeds='0-15',
                 fid_kimg=0.0)
    return c
