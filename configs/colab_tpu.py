"""configs/transfer512.py on a Colab TPU (8 cores, e.g. v2-8): batch 32 = 4 per core, bfloat16.

    python run_train.py --config configs/colab_tpu.py --workdir /content/drive/MyDrive/runs/witcher512 \
        --config.transfer.path=ckpt/anime512 --config.data.path=data/witcher/build

Only the device settings differ from transfer512 (same network, so the same checkpoint transfers):
the step is `pmap`ped over all local TPU cores (jax.local_devices()); batch 32 must divide by their
number (8 -> 4 images per core, which is also the minibatch-stddev group). The 4 highest resolutions
(64..512) of G and D are computed in bfloat16 (model.num_fp16_res=4, model.mixed_dtype='bfloat16', the
TPU's native matmul type; parameters, optimiser state and losses stay float32). ema_kimg auto = 32 *
10 / 32 = 10. data.path is a TFDS directory (from `data-prep build`), read with tf.data on the host.
Put the workdir on Google Drive so checkpoints survive a disconnect; rerunning resumes.
"""
from stylegan_jax.train.loop import sibling_config


def get_config():
    c = sibling_config(__file__, 'transfer512')
    c.model.update(num_fp16_res=4, mixed_dtype='bfloat16')
    c.train.update(batch=32, batch_gpu=0)
    return c
