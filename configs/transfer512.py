"""Fine-tune a pretrained 512x512 StyleGAN2 (e.g. an anime-face/portrait net) on a few hundred portraits.

    stylegan-convert anime512/network-snapshot.pkl --out ckpt/anime512
    data-prep all --config configs/data/witcher.py          # -> data/witcher/build (TFDS, 512x512)
    python run_train.py --config configs/transfer512.py --workdir runs/witcher512 \
        --config.transfer.path=ckpt/anime512 --config.data.path=data/witcher/build

transfer.path and data.path are required (run_train.py stops with a one-line error when either is
unset; `--config.transfer.path=''` trains from scratch on purpose). transfer.path may also be a
training workdir (`--config.transfer.kimg=120` picks its snapshot at 120 kimg; default the latest).
Rerun the same command to resume.

Network: the StyleGAN2 config-F shape public 512px anime-face nets have (z/w 512, 8 mapping layers,
channel_base 32768, channel_max 512, minibatch-stddev group 4), so every tensor is copied (the
transfer table printed at start says so; a mismatch shows as 'reshaped'/'new' rows). The 4 highest
resolutions run in bfloat16 with conv_clamp 256 (the reference's mixed precision in bfloat16).

Training follows stylegan2-ada-pytorch `train.py --resume=PKL`: ada.kimg and train.ema_rampup stay
-1, which with a transfer source means the reference's resume settings, ada_kimg 100 ("make ADA react
faster at the beginning") and no EMA ramp-up (the transfer table says so). Small-data choices, each
overridable on the command line:

* ADA adaptive, augpipe bgc, target 0.6: the reference default `--aug=ada`, made for small sets.
* data.xflip: portraits are left-right symmetric enough; it doubles the set (reference `--mirror=1`).
* train.freeze_d = 4: FreezeD (Mo et al. 2020, arXiv 2002.10964) froze the 4 highest-resolution D blocks
  in its StyleGAN fine-tuning (FFHQ -> animal faces / anime faces); at 512 these are b512..b64, D's
  low-level feature extractors, leaving b32..b4 and the epilogue to learn the new domain. It also
  cuts D's trainable work on tiny sets. (The reference's `--freezed` counts layers, not blocks: 4 blocks
  here ~ `--freezed=13` there.) Set 0 if the target textures (photos) differ strongly from the source.
* train.r1_gamma = 10: the R1 weight of config-F nets (TF StyleGAN2's D_logistic_r1 default and the
  reference's cfg 'stylegan2', gamma=10; the reference's own 512px transfer source
  ffhq-res512-mirror-stylegan2-noaug was trained with it). Keeping the source's R1 avoids changing D's
  regularisation at the start of fine-tuning (`--config.train.r1_gamma=-1` selects cfg 'auto''s
  0.0002 * 512^2 / mb, mb = 8 per GPU at 512).
* batch 16, lr 0.0025 (auto below 1024), ema_kimg 5 = batch * 10 / 32 (the auto formula at this batch).
* 200 kimg (~ 500 passes over 400 images; transfer from a related domain usually converges in
  50-200 kimg); snapshots and sample grids every 20 kimg so a good snapshot can be picked by eye
  (all snapshots are kept; `--config.log.keep_checkpoints=5` keeps the last 5 and the best-FID one).
* data.photo_ratio None: use the photo:painting mix `data-prep build` wrote (build.photo_ratio);
  set e.g. 0.3 to re-subsample it at training time (TFDS only).
"""
from ml_collections import config_dict

from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'default')
    c.model.update(img_resolution=512, mapping_layers=8, channel_base=32768, num_fp16_res=4)
    c.data.update(resolution=512, xflip=True)
    c.data.path = config_dict.placeholder(str)       # required: the TFDS dir from `data-prep build`
    c.transfer.path = config_dict.placeholder(str)   # required: converted checkpoint or training workdir
    c.train.update(total_kimg=200.0, r1_gamma=10.0, ema_kimg=5.0, freeze_d=4)
    c.log.update(checkpoint_kimg=20.0, grid_kimg=20.0)
    return c
