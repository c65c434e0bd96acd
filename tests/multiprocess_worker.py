"""One process of tests/test_multiprocess.py: a tiny training run, alone or as one of several processes.

    python tests/multiprocess_worker.py --devices 2 --process-id 0 --num-processes 2 --port P \
        --data FOLDER --workdir W --steps 4 --out OUT.npz

Sets the virtual CPU device count, joins the `jax.distributed` group on 127.0.0.1 when there is more
than one process, trains with `loop.train_and_evaluate`, and writes to OUT.npz the final state's
leaves and, per step, the images this process fed to the step (to check the data split).
"""
import argparse
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument('--devices', type=int, required=True)
    p.add_argument('--process-id', type=int, default=0)
    p.add_argument('--num-processes', type=int, default=1)
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--data', required=True)
    p.add_argument('--workdir', required=True)
    p.add_argument('--steps', type=int, required=True)
    p.add_argument('--out', required=True)
    a = p.parse_args()
    os.environ['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={a.devices}'
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import jax
    if a.num_processes > 1:
        jax.distributed.initialize(f'127.0.0.1:{a.port}', num_processes=a.num_processes, process_id=a.process_id,
                                   local_device_ids=list(range(a.devices)), initialization_timeout=120)
    import numpy as np

    from stylegan_jax import compile_cache
    from stylegan_jax.train import input_pipeline, loop
    from stylegan_jax.train.config_files import load_config

    batches = []
    real_iter = input_pipeline.create_input_iter

    def recording_iter(*args, **kwargs):  # the per-process training batches (the loop's call; not progress.py's)
        record = 'local_shards' in kwargs
        for batch in real_iter(*args, **kwargs):
            if record:
                batches.append(batch['image'].copy())
            yield batch

    input_pipeline.create_input_iter = recording_iter
    if a.num_processes == 1:
        # Not shared between processes: on CPU an executable compiled by one process and loaded by another
        # from the persistent cache fails to set up its gloo collectives.
        compile_cache.enable(os.environ.get('JAX_COMPILATION_CACHE_DIR'))

    batch = 8
    c = load_config(os.path.join(os.path.dirname(__file__), '..', 'configs', 'default.py'))
    c.model.update(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=1, channel_base=128, channel_max=16,
                   mbstd_group_size=2)
    c.data.update(source='folder', path=a.data, resolution=16, xflip=True, shuffle_buffer=64)
    c.train.update(batch=batch, total_kimg=a.steps * batch / 1000, pl_weight=0.0, g_reg_interval=4, d_reg_interval=2)
    c.ada.update(mode='off')
    c.log.update(log_every_steps=1, checkpoint_kimg=2 * batch / 1000, grid_kimg=2 * batch / 1000, grid_seeds='0-3')
    ckpts = os.path.join(a.workdir, 'checkpoints')
    start = max([int(n) for n in os.listdir(ckpts) if n.isdigit()], default=0) if os.path.isdir(ckpts) else 0
    state = loop.train_and_evaluate(c, a.workdir)
    leaves = {f'leaf{i}': np.asarray(v) for i, v in enumerate(jax.tree_util.tree_leaves(state))}
    # the prefetcher reads ahead: only the batches of the steps this run took count
    np.savez(a.out, batches=np.stack(batches[:a.steps - start]), start=start, **leaves)
    if a.num_processes > 1:
        jax.distributed.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
