"""configs/transfer512.py on one Colab GPU (T4 or V100, 16 GB): float16, 8 images at a time.

    python run_train.py --config configs/colab_gpu.py --workdir /content/drive/MyDrive/runs/witcher512 \
        --config.transfer.path=ckpt/anime512 --config.data.path=data/witcher/build

Only the device settings differ from transfer512 (same network and batch, so the same checkpoint
transfers and the run is the same training): batch 16 accumulated in 2 rounds of train.batch_gpu=8
(the reference's batch_gpu at 512 on one GPU), so 8 images are in memory at a time. The 4 highest
resolutions run in float16 as the reference's mixed precision (T4 and V100 have float16 tensor cores
but no fast bfloat16), with conv_clamp 256 and the modulated-conv pre-normalisation against float16
overflow, and non-finite gradients replaced as the reference does (train.nonfinite='nan_to_num').
The float32 layers stay exact (model.fp32_precision='highest', the reference's TF32-off choice;
T4/V100 have no TF32). Grids of 16 seeds keep the sampling batch small.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'transfer512')
    c.model.update(mixed_dtype='float16')
    c.train.update(batch_gpu=8, nonfinite='nan_to_num')
    c.log.update(grid_seeds='0-15')
    return c
