"""Demo from scratch: a tiny StyleGAN2-ADA on the built-in procedural portraits, on a CPU in minutes.

    python run_train.py --config configs/demo_scratch.py --workdir runs/demo_scratch

No download: the 32x32 portrait set (the transfer demo's source domain) is generated into
WORKDIR/demo_data. The networks are the reference architecture scaled down (32x32, <= 64 channels,
2 mapping layers, z/w 64); everything else (losses, lazy R1/path-length regularisation, style
mixing, EMA, ADA) is the full training. After its 6 kimg the grid is still coloured blobs (faces
need about 25-60 kimg from scratch): configs/demo.py shows what a pretrained start changes.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'default')
    c.model.update(z_dim=64, w_dim=64, img_resolution=32, mapping_layers=2, channel_base=1024, channel_max=64,
                   mbstd_group_size=4)
    c.data.update(source='demo', resolution=32, xflip=True, num_images=512, shuffle_buffer=512)
    c.train.update(batch=16, total_kimg=6.0)
    c.ada.update(kimg=100.0)
    c.log.update(log_every_steps=25, checkpoint_kimg=2.0, keep_checkpoints=2, grid_kimg=1.0, grid_seeds='0-15')
    return c
