"""The training loop (stylegan_jax.train.loop.train_and_evaluate) end to end on a tiny 16x16 config.

Compiling the training step costs tens of CPU seconds, so one test trains for real (an
uninterrupted run, an interrupted + resumed run, sampling from the workdir); the NaN-guard,
snapshot-policy and transfer tests replace `Trainer.step` with a stand-in that follows the real
step's contract (the state comes back unchanged apart from the step counter when `ok` is False; the
step-level guard is tested in test_train_step.py) so they test only what the loop does around it.
Multi-process training is in test_multiprocess.py.
"""
import json
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import checkpoint as ckpt_lib
from stylegan_jax import sample
from stylegan_jax.metrics import evaluator as evaluator_lib
from stylegan_jax.train import input_pipeline, loop, run_config, snapshots, transfer
from stylegan_jax.train import step as step_lib
from stylegan_jax.train.config_files import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]
BATCH = 8
ADA_P0 = 0.1


def tiny_config(steps: int, resolution: int = 16, seed: int = 0):
    """A run of `steps` steps of batch 8 on 64 demo images; checkpoints every 2 steps, grids every 3."""
    c = load_config(REPO / 'configs' / 'default.py')
    c.seed = seed
    c.model.update(z_dim=32, w_dim=32, img_resolution=resolution, mapping_layers=2, channel_base=256,
                   channel_max=32)
    c.data.update(source='demo', path='', resolution=resolution, num_images=64, shuffle_buffer=64, xflip=True)
    c.train.update(batch=BATCH, total_kimg=steps * BATCH / 1000)
    # Augmentation on from the start (p = 0.1) and ADA moving p by 8 * 4 / 1000 at step 4: both are
    # part of what a resumed run has to reproduce. 'blit' keeps the compile time small.
    c.ada.update(mode='adaptive', augpipe='blit', p=ADA_P0, interval=4, kimg=1.0)
    c.log.update(log_every_steps=1, checkpoint_kimg=2 * BATCH / 1000, keep_checkpoints=3, grid_kimg=3 * BATCH / 1000,
                 grid_seeds='0-3', fid_kimg=0.0)
    return c


def _leaves(tree) -> dict:
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def _steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


def _history(workdir: pathlib.Path) -> list[dict]:
    """The status records of loss_history.jsonl (the grid steps add records of their own: SWD)."""
    rows = [json.loads(line) for line in (workdir / 'loss_history.jsonl').read_text().splitlines()]
    return [r for r in rows if 'Timing/sec_per_kimg' in r]


def test_train_resume_and_sample(tmp_path, capsys, monkeypatch):
    # Uninterrupted run A: 6 steps.
    run_a = tmp_path / 'a'
    final_a = loop.train_and_evaluate(tiny_config(6), run_a)
    assert int(final_a.step) == 6
    assert _steps(run_a) == [2, 4, 6]
    assert list((run_a / 'samples').glob('grid_kimg*.png'))
    assert (run_a / 'loss_curves.png').stat().st_size > 0
    assert list(run_a.glob('events.out.tfevents.*'))
    cfg, info = ckpt_lib.read_network_json(run_a)
    assert (cfg.img_resolution, cfg.z_dim) == (16, 32) and info['training']['train']['batch'] == BATCH
    hist_a = _history(run_a)
    assert [h['step'] for h in hist_a] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(h['Loss/G/loss']) and np.isfinite(h['Loss/D/loss']) for h in hist_a)
    assert 'Loss/r1_penalty' in hist_a[0] and 'Loss/pl_penalty' in hist_a[0]  # step 0: lazy regularisers ran
    assert abs(float(final_a.ada_p) - ADA_P0) == pytest.approx(BATCH * 4 / 1000, rel=1e-5)  # one ADA update

    # The workdir is a checkpoint for stylegan-sample.
    out = tmp_path / 'samples'
    assert sample.main(['--checkpoint', str(run_a), '--seeds', '0-3', '--outdir', str(out)]) == 0
    pngs = sorted(p.name for p in out.glob('*.png'))
    assert pngs == ['seed0000.png', 'seed0001.png', 'seed0002.png', 'seed0003.png']
    from PIL import Image
    assert Image.open(out / 'seed0000.png').size == (16, 16)
    capsys.readouterr()

    # Run B: 3 steps, then a crash after step 3 was logged but before its checkpoint was written
    # (checkpoint 3 removed); rerunning with the full length resumes from step 2.
    run_b = tmp_path / 'b'
    loop.train_and_evaluate(tiny_config(3), run_b)
    assert _steps(run_b) == [2, 3]
    shutil.rmtree(run_b / 'checkpoints' / '3')
    assert [h['step'] for h in _history(run_b)] == [1, 2, 3]
    starts = []
    real_iter = input_pipeline.create_input_iter

    def recording_iter(*args, **kwargs):
        if 'local_shards' in kwargs:  # the loop's training stream (progress.py reads reals too)
            starts.append(kwargs['start_step'])
        return real_iter(*args, **kwargs)

    monkeypatch.setattr(input_pipeline, 'create_input_iter', recording_iter)
    capsys.readouterr()
    final_b = loop.train_and_evaluate(tiny_config(6), run_b)
    assert 'resumed from kimg 0.0 (step 2)' in capsys.readouterr().out
    assert starts == [2]  # the data stream continues where step 2 left it
    assert int(final_b.step) == 6 and _steps(run_b) == [2, 4, 6]

    # Same result as the uninterrupted run: parameters, EMA, optimizers, ADA, path-length mean.
    for name in ('g_params', 'g_buffers', 'd_params', 'ema_params', 'ema_buffers', 'g_opt', 'd_opt', 'pl_mean',
                 'ada_p', 'ada_sum', 'ada_count', 'rng'):
        la, lb = _leaves(getattr(final_a, name)), _leaves(getattr(final_b, name))
        assert la.keys() == lb.keys()
        for k in la:
            np.testing.assert_allclose(lb[k], la[k], rtol=1e-6, atol=1e-7, err_msg=f'{name}{k}')
    # The history was cut back to step 2 on resume: every step once, step 3 from the resumed run,
    # with the uninterrupted run's losses.
    hist_b = _history(run_b)
    assert [h['step'] for h in hist_b] == [1, 2, 3, 4, 5, 6]
    for ha, hb in zip(hist_a, hist_b):
        for key in ('Loss/G/loss', 'Loss/D/loss', 'Progress/augment', 'Progress/kimg'):
            assert hb[key] == pytest.approx(ha[key], rel=1e-6, abs=1e-7), (ha['step'], key)

    # A run that is already complete resumes and stops at once with the same state.
    final_c = loop.train_and_evaluate(tiny_config(6), run_b)
    assert 'resumed from kimg 0.0 (step 6)' in capsys.readouterr().out
    np.testing.assert_array_equal(_leaves(final_c.ema_params)["['mapping']['fc0']['weight']"],
                                  _leaves(final_b.ema_params)["['mapping']['fc0']['weight']"])
    assert [h['step'] for h in _history(run_b)] == [1, 2, 3, 4, 5, 6]


def _fake_step(bad_from: int | None = None):
    """Stand-in for Trainer.step: no compilation. Good steps bump pl_mean (a visible trace of progress);
    from step `bad_from` on, `ok` is False and the state comes back unchanged but for the step counter."""
    def fake(self, state, batch, step):
        ok = bad_from is None or step < bad_from
        n = self.n_local
        state = state.replace(step=state.step + 1, pl_mean=state.pl_mean + 1 if ok else state.pl_mean)
        loss = 1.0 if ok else float('nan')
        return state, {'Loss/G/loss': jnp.full((n,), loss)}, jnp.full((n,), ok)
    return fake


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(step_lib.Trainer, 'step', _fake_step(bad_from=3))
    config = tiny_config(8)
    config.train.max_bad_steps = 2
    with pytest.raises(loop.TrainingError, match='stopped after 2 consecutive non-finite steps') as e:
        loop.train_and_evaluate(config, tmp_path)
    assert str(tmp_path / 'checkpoints' / '4') in str(e.value)
    out = capsys.readouterr().out
    # Steps counted from 0 as in Trainer.step / state.step: steps 3 and 4 were bad.
    assert 'non-finite loss or gradient at step 3: step skipped (1 in a row)' in out
    assert 'non-finite loss or gradient at step 4: step skipped (2 in a row)' in out
    assert 'at step 5' not in out
    # Checkpoint 4 was written after the first bad step (the state was kept) and holds the state of the
    # last good step (3 bumps of pl_mean); nothing was written after it.
    assert _steps(tmp_path) == [2, 4]
    manager = snapshots.open_manager(tmp_path)
    cfg = run_config.network_config(config)
    template = jax.device_get(step_lib.init_state(cfg, run_config.train_config(config, cfg), jax.random.PRNGKey(0)))
    state, meta = snapshots.restore(manager, template)
    assert (meta['step'], int(state.step), float(state.pl_mean)) == (4, 4, 3.0)
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves((state.g_params, state.d_params)))


def test_transfer_from_a_training_workdir(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(step_lib.Trainer, 'step', _fake_step())
    src = tmp_path / 'src16'
    loop.train_and_evaluate(tiny_config(2, resolution=16, seed=1), src)
    capsys.readouterr()
    config = tiny_config(1, resolution=32)
    config.transfer.path = str(src)
    loop.train_and_evaluate(config, tmp_path / 'dst32')
    out = capsys.readouterr().out
    table = out[out.index('transfer: G: '):]
    head = table.splitlines()[0]
    assert all(f'{net}: ' in head for net in ('G', 'G_ema', 'D')) and ' new' in head and 'copied' in head
    assert 'params/synthesis/b32/torgb/weight' in table  # a new layer is listed by name
    # the reference's train.py --resume settings, and that they are the automatic ones (-1 in the config)
    assert ("transfer: ada.kimg 1 (set in the config); EMA ramp-up off (the reference's resume setting)"
            in table.splitlines())
    _, src_g, _ = ckpt_lib.load_network(src, 'G_ema')
    dst_cfg, dst_g, _ = ckpt_lib.load_network(tmp_path / 'dst32', 'G_ema')
    assert dst_cfg.img_resolution == 32
    ls, ld = _leaves(src_g), _leaves(dst_g)
    copied = "['params']['synthesis']['b16']['conv0']['weight']"
    np.testing.assert_array_equal(ld[copied], ls[copied])
    np.testing.assert_array_equal(ld["['params']['mapping']['fc0']['weight']"],
                                  ls["['params']['mapping']['fc0']['weight']"])
    assert "['params']['synthesis']['b32']['conv0']['weight']" in ld
    assert not any('b32' in k for k in ls)
    _, src_d, _ = ckpt_lib.load_network(src, 'D')
    _, dst_d, _ = ckpt_lib.load_network(tmp_path / 'dst32', 'D')
    np.testing.assert_array_equal(_leaves(dst_d)["['params']['b16']['conv0']['weight']"],
                                  _leaves(src_d)["['params']['b16']['conv0']['weight']"])


def test_run_train_cli_reports_bad_config_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, 'run_train.py', '--config', 'configs/demo.py', '--workdir',
                           str(tmp_path / 'run'), '--config.ada.mode=bogus'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    # Config errors are found before TensorFlow is imported (it logs to stderr when loaded).
    assert proc.stderr.splitlines() == ["run_train.py: error: ada.mode must be 'adaptive', 'fixed' or 'off', "
                                        "got 'bogus'"], proc.stderr
    assert not (tmp_path / 'run').exists()


class _FakeEvaluator:
    """Stands in for metrics.evaluator.Evaluator: scripted FIDs per step (the key is PRNGKey(step))."""

    def __init__(self, fids):
        self.fids, self.calls = fids, []

    def __call__(self, cfg, g_variables, key):
        step = int(np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                              else key)[-1])
        self.calls.append(step)
        assert jax.tree_util.tree_leaves(g_variables)[0].ndim >= 1  # one copy, not replicated
        return {'fid': self.fids[step]}


def _metrics(workdir):
    return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


@pytest.mark.parametrize('keep', [0, 2])
def test_snapshots_fid_per_snapshot_and_best_kept(tmp_path, capsys, monkeypatch, keep):
    """Every snapshot is kept by default; keep=N keeps the last N and the best-FID one. FID is measured on
    a snapshot every log.fid_kimg (a fraction of a kimg here: 0.016) and recorded in metrics.jsonl."""
    monkeypatch.setattr(step_lib.Trainer, 'step', _fake_step())
    fids = {2: 50.0, 4: 30.0, 6: 40.0, 8: 45.0, 10: 44.0}
    fake = _FakeEvaluator(fids)
    monkeypatch.setattr(evaluator_lib, 'from_training_config', lambda config, workdir: (fake, ''))
    config = tiny_config(10)
    config.log.update(checkpoint_kimg=4 * BATCH / 1000, fid_kimg=2 * BATCH / 1000, keep_checkpoints=keep,
                      grid_kimg=10 * BATCH / 1000)
    loop.train_and_evaluate(config, tmp_path)
    out = capsys.readouterr().out
    assert 'FID skipped' not in out and 'kimg 0.0: fid 30' in out
    assert fake.calls == [2, 4, 6, 8, 10]
    rows = _metrics(tmp_path)
    assert [(r['step'], r['fid'], r['snapshot']) for r in rows] == [(s, f, f'checkpoints/{s}') for s, f in fids.items()]
    assert all(r['kimg'] == pytest.approx(r['step'] * BATCH / 1000) for r in rows)
    # each FID belongs to a snapshot; the policy then keeps all, or the last 2 plus step 4 (best FID)
    assert _steps(tmp_path) == ([2, 4, 6, 8, 10] if keep == 0 else [4, 8, 10])
    # the kept best snapshot is loadable as a network
    cfg, _, _ = ckpt_lib.load_network(tmp_path, 'G_ema', step=4)
    assert cfg.img_resolution == 16


def test_resume_cuts_metrics_back_and_keeps_the_best(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(step_lib.Trainer, 'step', _fake_step())
    fids = {2: 20.0, 4: 30.0, 6: 25.0, 8: 35.0}
    monkeypatch.setattr(evaluator_lib, 'from_training_config', lambda config, workdir: (_FakeEvaluator(fids), ''))
    config = tiny_config(6)
    config.log.update(checkpoint_kimg=2 * BATCH / 1000, fid_kimg=2 * BATCH / 1000, keep_checkpoints=1)
    loop.train_and_evaluate(config, tmp_path)
    assert _steps(tmp_path) == [2, 6]
    # a line of a later (lost) snapshot, as an interrupted run leaves it, is dropped on resume
    with open(tmp_path / 'metrics.jsonl', 'a') as f:
        f.write(json.dumps({'step': 7, 'fid': 1.0}) + '\n{"step": 8, "fi')
    config.train.total_kimg = 8 * BATCH / 1000
    loop.train_and_evaluate(config, tmp_path)
    assert [r['step'] for r in _metrics(tmp_path)] == [2, 4, 6, 8]
    assert _steps(tmp_path) == [2, 8]


def test_status_lines_log_peak_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(step_lib.Trainer, 'step', _fake_step())
    loop.train_and_evaluate(tiny_config(2), tmp_path)
    rows = _history(tmp_path)
    assert all(0.05 < r['Resources/peak_host_mem_gb'] < 64 for r in rows)  # this process's peak RSS
    if jax.local_devices()[0].platform == 'cpu':  # no device memory statistics on CPU
        assert not any('Resources/peak_device_mem_gb' in r for r in rows)


@pytest.mark.parametrize('select, kwargs', [({}, {}), ({'step': 2}, {'step': 2}), ({'kimg': 0.016}, {'kimg': 0.016})])
def test_transfer_snapshot_selection_is_passed_only_when_set(tmp_path, monkeypatch, select, kwargs):
    calls = []

    def fake_load(path, **kw):
        calls.append((path, kw))
        raise ckpt_lib.CheckpointError(f'{path}: stop here')

    monkeypatch.setattr(transfer, 'load_transfer_source', fake_load)
    config = tiny_config(1)
    config.transfer.update(path=str(tmp_path / 'src'), **select)
    with pytest.raises(loop.TrainingError, match='transfer.path: .*stop here'):
        loop.train_and_evaluate(config, tmp_path / 'dst')
    assert calls == [(str(tmp_path / 'src'), kwargs)]
