"""Pretrain the demo's source model: a tiny StyleGAN2-ADA on the built-in anime-like portraits.

    python run_train.py --config configs/demo_pretrain.py --workdir runs/demo_pretrain
    python -m stylegan_jax.assets export runs/demo_pretrain     # -> stylegan_jax/assets/demo_portraits32

This is how the model that `configs/demo.py` fine-tunes from (shipped in
stylegan_jax/assets/demo_portraits32, with its checksums) was made: the "source domain" of the
transfer demo, like the anime-face models that real fine-tuning starts from. The data are 2,048
procedural portraits (`data.demo_set='portraits'`, generated into WORKDIR/demo_data, no download);
the network is the demo architecture (32x32, <= 64 channels, 2 mapping layers, z/w 64), and
configs/demo.py uses the same one, so every tensor is copied when it transfers.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'default')
    c.model.update(z_dim=64, w_dim=64, img_resolution=32, mapping_layers=2, channel_base=1024, channel_max=64,
                   mbstd_group_size=4)
    c.data.update(source='demo', demo_set='portraits', resolution=32, xflip=True, num_images=2048,
                  shuffle_buffer=2048)
    # r1_gamma and ema_kimg: the values 'auto' gave the shipped model on 1 device (0.0002 * 32^2 / 32 and
    # 32 * 10 / 32), set explicitly so a rerun on more devices trains the same model.
    c.train.update(batch=16, total_kimg=150.0, pl_weight=0.0, style_mixing_prob=0.0, r1_gamma=0.0064,
                   ema_kimg=10.0)
    c.ada.update(kimg=100.0)
    c.log.update(log_every_steps=50, checkpoint_kimg=5.0, keep_checkpoints=2, grid_kimg=5.0, grid_seeds='0-63')
    return c
