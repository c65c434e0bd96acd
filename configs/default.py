"""The full training config schema with its defaults: the one place every default lives.

    python run_train.py --config configs/default.py --workdir runs/x --config.data.path=/data/faces_tfds

Every other configs/*.py starts from this file (directly or through another config) and sets only
what differs; every key can be overridden on the command line (`--config.train.batch=32`).

The values are the reference's default run, StyleGAN2-ADA `train.py` (`--cfg=auto`, `--aug=ada`,
`--mirror=0`) for a 256x256 dataset on one GPU, in float32: batch 16, minibatch-stddev group 4,
channel_base 16384 (fmaps 0.5), lr 0.0025, 2 mapping layers, EMA ramp-up 0.05, and R1 gamma / EMA
half-life from the auto formulas (-1). configs/auto.py computes the same for any resolution and
device count. Mixed precision is set per accelerator by the configs that name one (colab_tpu,
colab_gpu) and by the reference family (stylegan2, paper*, cifar, auto: the 4 highest resolutions).

Conventions: -1 = the reference's automatic value (said per key); 0 = off, where a key says so.
The dataclass defaults (networks.NetworkConfig, train.step.TrainConfig, train.losses.LossConfig)
equal this file resolved on one device (tests/test_configs.py).
"""
import ml_collections
from ml_collections import config_dict


def get_config():
    c = ml_collections.ConfigDict()
    c.seed = 0  # global seed: network init, latents, augmentation, data order

    # Networks (networks.NetworkConfig; the reference's G/D kwargs as train.py sets them).
    c.model = ml_collections.ConfigDict()
    c.model.z_dim = 512                   # latent z size
    c.model.w_dim = 512                   # intermediate latent w size
    c.model.c_dim = 0                     # number of classes (one-hot labels); 0 = unconditional
    c.model.img_resolution = 256          # output resolution; must equal data.resolution
    c.model.img_channels = 3              # RGB
    c.model.mapping_layers = 2            # mapping network depth (cfg 'auto': 2; paper configs: 8)
    c.model.mapping_lr_multiplier = 0.01  # learning-rate multiplier of the mapping layers
    c.model.w_avg_beta = 0.995            # decay of the tracked w average (truncation centre)
    c.model.channel_base = 16384          # channels at resolution r = min(channel_base / r, channel_max); fmaps * 32768
    c.model.channel_max = 512             # channel cap
    c.model.num_fp16_res = 0              # highest resolutions computed in mixed_dtype (reference: 4); 0 = float32
    c.model.mixed_dtype = 'bfloat16'      # 'bfloat16' (TPU, A100+) or 'float16' (T4/V100, as the reference)
    c.model.conv_clamp = 256.0            # clamp conv outputs to +-this (the reference's fp16 guard); <= 0 = off
    c.model.mbstd_group_size = 4          # minibatch-stddev group (cfg 'auto': min(batch per GPU, 4)); 0 = off
    c.model.mbstd_num_channels = 1        # minibatch-stddev features
    c.model.d_mapping_layers = 8          # D's label-embedding depth (only with c_dim > 0)
    c.model.d_cmap_dim = 0                # D's label-embedding width; 0 = channels at 4x4
    c.model.d_num_fp16_res = -1           # D's mixed-precision resolutions; -1 = num_fp16_res
    c.model.d_architecture = 'resnet'     # D blocks: 'resnet' (StyleGAN2), 'skip' or 'orig' (cfg 'cifar')
    c.model.fp32_precision = 'highest'    # matmul/conv precision of float32 layers: 'highest' (exact, the
                                          # reference: TF32 off), 'high' (3-pass bf16 / TF32), 'default'

    # Training data (train/input_pipeline.py).
    c.data = ml_collections.ConfigDict()
    c.data.source = 'tfds'                # 'tfds' (data-prep build output), 'folder' (images), 'demo' (built in)
    c.data.path = ''                      # TFDS directory or image folder; demo: '' = WORKDIR/demo_data
    c.data.resolution = 256               # images are centre-cropped and resized to this
    c.data.xflip = False                  # random left-right flips (reference --mirror=1 doubles the set)
    c.data.photo_ratio = config_dict.placeholder(float)  # TFDS: keep photos/(photos+paintings) at this; None = as built
    c.data.split = 'train'                # TFDS split
    c.data.demo_set = 'portraits'         # demo only: built-in set, 'portraits' or 'elves' (train/demo_data.py)
    c.data.num_images = 256               # demo only: images to generate
    c.data.shuffle_buffer = 10_000        # shuffle window (>= the set size: a uniform permutation per epoch)

    # Optimisation (train.step.TrainConfig, train.losses.LossConfig).
    c.train = ml_collections.ConfigDict()
    c.train.batch = 16                    # global batch over all devices (cfg 'auto' at 256 on 1 GPU)
    c.train.batch_gpu = 0                 # images per device per accumulation round (reference batch_gpu); 0 = all
    c.train.total_kimg = 25_000.0         # training length in thousands of real images
    c.train.g_lr = 0.0025                 # G Adam learning rate (betas 0, 0.99; eps 1e-8)
    c.train.d_lr = 0.0025                 # D Adam learning rate
    c.train.r1_gamma = -1.0               # R1 weight; -1 = cfg 'auto': 0.0002 res^2 / (auto batch for res, devices)
    c.train.pl_weight = 2.0               # path-length regulariser weight; 0 = off
    c.train.pl_decay = 0.01               # decay of the path-length mean
    c.train.pl_batch_shrink = 2           # path-length batch = batch_gpu / this
    c.train.style_mixing_prob = 0.9       # probability of mixing two latents; 0 = off
    c.train.g_reg_interval = 4            # lazy path-length regularisation every N steps; 0 = every step (Gboth)
    c.train.d_reg_interval = 16           # lazy R1 every N steps; 0 = every step (Dboth)
    c.train.ema_kimg = -1.0               # G EMA half-life in kimg; -1 = cfg 'auto': auto batch * 10 / 32
    c.train.ema_rampup = -1.0             # EMA ramp-up; -1 = 0.05 (cfg 'auto'), off when transfer.path is set
                                          # (train.py --resume); 0 = off
    c.train.freeze_d = 0                  # FreezeD: D blocks from the highest resolution that are not trained
    c.train.nonfinite = 'skip'            # non-finite loss/gradient: 'skip' the step, or 'nan_to_num' the
                                          # gradients (the reference)
    c.train.max_bad_steps = 10            # stop after this many non-finite steps in a row

    # ADA, adaptive discriminator augmentation (train/augment.py).
    c.ada = ml_collections.ConfigDict()
    c.ada.mode = 'adaptive'               # 'adaptive' (--aug=ada), 'fixed' (p = ada.p) or 'off' (--aug=noaug)
    c.ada.augpipe = 'bgc'                 # pipeline preset (reference --augpipe): 'blit', 'geom', 'color', 'bg', 'bgc'
    c.ada.p = 0.0                         # initial (or, with mode 'fixed', constant) augmentation probability
    c.ada.target = 0.6                    # target of r_t = E[sign(D(real))]
    c.ada.interval = 4                    # adjust p every N steps
    c.ada.kimg = -1.0                     # kimg for p to move by 1; -1 = 500, or 100 when transfer.path is set

    # Snapshots, sample grids, metrics, logs (train/loop.py).
    c.log = ml_collections.ConfigDict()
    c.log.log_every_steps = 50            # scalars to loss_history.jsonl / TensorBoard every N steps
    c.log.checkpoint_kimg = 200.0         # snapshot every N kimg (reference: 50 ticks of 4 kimg)
    c.log.keep_checkpoints = 0            # keep the last N snapshots (+ the best-FID one); 0 = keep all
    c.log.grid_kimg = 200.0               # sample grid every N kimg
    c.log.grid_seeds = '0-31'             # grid latents: seeds '0-31' or '1,5,9'
    c.log.fid_kimg = 0.0                  # FID every N kimg, on a snapshot (reference: fid50k_full every snapshot); 0 = off
    c.log.fid_real = ''                   # real set for FID: folder, TFDS dir or statistics .npz; '' = data.path
    c.log.fid_num_fake = 50_000           # generated images per FID (fid50k)
    c.log.fid_batch = 64                  # images per generator + Inception batch
    c.log.inception_weights = ''          # pt_inception-2015-12-05 weights file; '' = cached download

    # Start from another network (train/transfer.py).
    c.transfer = ml_collections.ConfigDict()
    c.transfer.path = ''                  # converted checkpoint, checkpoint file or training workdir; '' = scratch
    c.transfer.step = -1                  # workdir snapshot at this step; -1 = latest
    c.transfer.kimg = -1.0                # workdir snapshot at this kimg; -1 = latest
    return c
