"""configs/transfer512.py on one Colab GPU (T4, 16 GB): batch 8, 4 highest resolutions in bfloat16.

    python run_train.py --config configs/colab_gpu.py --workdir /content/drive/MyDrive/runs/witcher512 \
        --config.transfer.path=ckpt/anime512 --config.data.path=data/witcher/build

Only the device settings differ from transfer512 (same network, so the same checkpoint transfers):
batch 8 on the single GPU in one chunk (train.batch_gpu=8, as the reference's auto config at 512 on
one GPU: mb 8), minibatch-stddev group 4, ema_kimg auto = 8 * 10 / 32 = 2.5, grids of 16 seeds to keep
the sampling batch small. model.num_fp16_res=4 keeps the 64..512 activations in bfloat16, which halves
their memory; a T4 has no bfloat16 tensor cores, so the gain there is memory, not speed (on A100/L4/H100
it is both). Chunks (train.batch_gpu < batch) are vmapped, not looped, so they do not save memory:
if a T4 runs out of memory, lower the batch (`--config.train.batch=4 --config.train.batch_gpu=4`).
"""
from stylegan_jax.train.loop import sibling_config


def get_config():
    c = sibling_config(__file__, 'transfer512')
    c.model.update(num_fp16_res=4, mixed_dtype='bfloat16')
    c.train.update(batch=8, batch_gpu=8)
    c.log.update(grid_seeds='0-15')
    return c
