"""Demo: transfer learning on a CPU in minutes: a pretrained face model fine-tuned on 58 images of one elf.

    python run_train.py --config configs/demo.py --workdir runs/demo
    stylegan-sample --checkpoint runs/demo --seeds 0-15 --grid --outdir runs/demo/samples_cli

What the project is for, at toy scale. The start is the shipped 32x32 model pretrained on
anime-like cartoon portraits (stylegan_jax/assets/demo_portraits32, made by
configs/demo_pretrain.py: the "source domain"); the data is the built-in "target domain" of 58
procedural images of one character, a pointed-eared, silver-haired, green-eyed elf, 29 "photos"
and 29 "paintings" (`data.demo_set='elves'`, generated into WORKDIR/demo_data, no download).
Within the run the samples turn from the source faces into the elf: WORKDIR/samples/progress.png
shows reals | kimg 0 | ... | final, and the SWD printed at every grid falls.

Small-data fine-tuning settings (each overridable, e.g. `--config.data.photo_ratio=0.25`):

* transfer.path: the shipped model, resolved inside the installed package (works from any cwd);
  the run prints the transfer table (every tensor copied: same architecture).
* data.xflip: doubles the 58 images. ADA adaptive (bgc, target 0.6), reacting fast (ada.kimg 20:
  the 58 images are seen 200 times in this run).
* g_lr = d_lr = 0.005 (2x the source's) and ema_kimg 1 (auto: 10): a 12.8 kimg fine-tune has to
  move fast, and G_ema has to follow it. Measured on this demo: with lr 0.0025 the palette
  changes within 5 kimg but no ears appear by 12 kimg; with 0.005 the ears appear at about 8 kimg.
* train.freeze_d = 0: FreezeD is off here. At 32x32, D's first block (fromrgb and both 32x32
  convolutions) is all it has above 16x16; freezing it (freeze_d=1) gave no ears by 12 kimg with
  either lr, and at lr 0.005 the samples collapsed to photos only. transfer512 freezes 4 of
  8 blocks; `--config.train.freeze_d=1` tries it here.
* data.photo_ratio None (all 58); set it to choose the photo:painting mix (0 = paintings only).
  `python -m stylegan_jax.study --config configs/demo.py --sweep data.photo_ratio=0,0.5,1` compares.
"""
from stylegan_jax.assets import demo_model_path
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'demo_pretrain')
    c.data.update(demo_set='elves', num_images=58, shuffle_buffer=58)
    c.transfer.path = str(demo_model_path())
    c.train.update(total_kimg=12.8, g_lr=0.005, d_lr=0.005, ema_kimg=1.0)
    c.ada.update(kimg=20.0)
    c.log.update(log_every_steps=25, checkpoint_kimg=12.8, keep_checkpoints=1, grid_kimg=1.6)
    return c
