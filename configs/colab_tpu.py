"""configs/transfer512.py on a Colab TPU (8 cores, e.g. v2-8): batch 32 = 4 per core, bfloat16.

    python run_train.py --config configs/colab_tpu.py --workdir /content/drive/MyDrive/runs/witcher512 \
        --config.transfer.path=ckpt/anime512 --config.data.path=data/witcher/build

Only the device settings differ from transfer512 (same network, so the same checkpoint transfers):
the step is `pmap`ped over all TPU cores; batch 32 must divide by their number (8 -> 4 images per
core, which is also the minibatch-stddev group), ema_kimg = 32 * 10 / 32 = 10. The 4 highest
resolutions (64..512) of G and D run in bfloat16, the TPU's native matmul type (parameters, optimiser
state and losses stay float32), and the float32 layers use the TPU's default one-pass bfloat16
matmuls (model.fp32_precision='default', what TPU training in Flax does; 'highest' costs ~6 passes).
data.path is a TFDS directory (from `data-prep build`), read with tf.data on the host. Put the
workdir on Google Drive so checkpoints survive a disconnect; rerunning resumes.
"""
from stylegan_jax.train.config_files import base


def get_config():
    c = base(__file__, 'transfer512')
    c.model.update(fp32_precision='default')
    c.train.update(batch=32, ema_kimg=10.0)
    return c
