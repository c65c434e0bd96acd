"""The transfer demo end to end, for a few steps: configs/demo.py starts from the shipped pretrained
model (transfer table: every tensor copied; the kimg-0 grid is the shipped G_ema's), writes
samples/progress.png and logs the SWD; the run exports as a shipped-model directory again."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from stylegan_jax import assets, checkpoint
from stylegan_jax.sample import parse_seeds
from stylegan_jax.train import run_config
from stylegan_jax.train.config_files import load_config
from stylegan_jax.train.grid import GridSampler

from conftest import REPO

STEPS = 2


def test_demo_transfer_starts_from_the_shipped_model(tmp_path):
    c = load_config(REPO / 'configs' / 'demo.py')
    kimg = STEPS * c.train.batch / 1000
    work = tmp_path / 'run'
    # run_train.py as a user runs it, on one CPU device (8 virtual devices compile the step 2x slower);
    # 'blit' compiles in a fraction of bgc's time, and augmentation is not what this tests.
    env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}
    r = subprocess.run([sys.executable, 'run_train.py', '--config', 'configs/demo.py', '--workdir', str(work),
                        f'--config.train.total_kimg={kimg}', f'--config.log.grid_kimg={kimg / STEPS}',
                        '--config.log.log_every_steps=1', '--config.ada.augpipe=blit'],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    # The transfer table: same architecture, so every tensor of G, D and G_ema is copied.
    table = next(line for line in out.splitlines() if line.startswith('transfer: '))
    for net in ('G', 'D', 'G_ema'):
        assert f'{net}: ' in table
    assert ' 0 reshaped, 0 new, 0 dropped' in table and 'copied' in table
    # One SWD line per grid (kimg 0, each step) and the start -> end summary.
    swd_lines = [line for line in out.splitlines() if ': SWD ' in line and line.startswith('kimg ')]
    assert len(swd_lines) == STEPS + 1
    assert 'SWD (x1e3) from kimg 0.0 to 0.0' in out
    logged = [json.loads(line) for line in (work / 'loss_history.jsonl').read_text().splitlines()]
    assert sum('Metrics/swd' in rec for rec in logged) == STEPS + 1
    # progress.png: reals + one column per grid; the kimg-0 column is the shipped model's G_ema.
    pic = np.asarray(Image.open(work / 'samples' / 'progress.png'))
    assert pic.shape[1] == (STEPS + 2) * (96 + 2) - 2 + 10
    cfg, g_ema, _ = checkpoint.load_network(assets.demo_model_path(), 'G_ema')
    assert cfg == run_config.network_config(c)
    start = GridSampler(cfg, parse_seeds('0-15')).render(g_ema)
    # Rendered in rounds (training passes train.batch_gpu; 16 = 5 x 3 + 1, the last round padded): same images.
    in_rounds = GridSampler(cfg, parse_seeds('0-15'), batch=3).render(g_ema)
    assert in_rounds.shape == start.shape
    assert np.abs(in_rounds.astype(int) - start).max() <= 1
    x0 = 96 + 2 + 10
    np.testing.assert_array_equal(pic[34:34 + 96:3, x0:x0 + 96:3], start[0])
    # The run's snapshot exports as a shipped-model directory (what configs/demo_pretrain.py's run became).
    exported = assets.export_workdir(work, tmp_path / 'exported')
    assert assets.verify_checksums(exported) >= 4
    _, nets, info = checkpoint.load_networks(exported)
    _, run_nets, _ = checkpoint.load_networks(work)
    assert set(nets) == {'G_ema', 'G', 'D'}
    for which in nets:
        for a, b in zip(_leaves(nets[which]), _leaves(run_nets[which])):
            np.testing.assert_array_equal(a, b)
    assert any(f'step {STEPS}' in n for n in info['notes'])


def _leaves(tree):
    import jax
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
