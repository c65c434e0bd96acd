"""Tests for stylegan_jax.study (sweeps: one run per value, evaluated on the same real sets).

Training is replaced by a stand-in that writes a converted checkpoint of a freshly initialised
16x16 generator (seeded by the swept value), and the Inception network by a fixed random
projection of the pixels (FID/KID's own numbers are tested against pytorch-fid in
test_metrics_scores.py; Inception at 299x299 costs minutes on a CPU), so the test covers the sweep
runner and the evaluation plumbing in seconds. The real training path is the same
`loop.train_and_evaluate` run_train.py uses (tests/test_demo_transfer.py).
"""
import json
import math
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from stylegan_jax import checkpoint, networks
from stylegan_jax import study
from stylegan_jax.train import run_config
from stylegan_jax.train.config_files import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_demo_config():
    """configs/demo.py (the elves, photos + paintings) with a 16x16 network, locked as run_train.py's."""
    c = load_config(REPO / 'configs' / 'demo.py')
    c.model.update(z_dim=32, w_dim=32, img_resolution=16, channel_base=256, channel_max=32)
    c.data.update(resolution=16)
    c.transfer.path = ''
    c.lock()
    return c


def fake_train(config, run_dir):
    """Stands in for loop.train_and_evaluate: a converted checkpoint of a seeded fresh generator."""
    cfg = run_config.network_config(config)
    seed = int(round(1000 * (config.data.photo_ratio if config.data.photo_ratio is not None else -1)))
    g = networks.init_generator(cfg, jax.random.PRNGKey(seed & 0x7FFFFFFF))
    checkpoint.save_networks(run_dir, cfg, {'G_ema': g}, {'source': 'test stand-in'})


class ProjectionFeatures:
    """Stands in for inception.FeatureExtractor: 2048-d features from a fixed random projection."""

    def __init__(self, params, batch_size=32):
        self.proj = None

    def __call__(self, images):
        x = np.asarray(images, np.float32).reshape(len(images), -1) / 255
        if self.proj is None:
            self.proj = np.random.default_rng(0).normal(size=(x.shape[1], 2048)).astype(np.float32) / 30
        return {'pool': np.tanh(x @ self.proj)}


@pytest.fixture
def fake_inception(monkeypatch):
    from stylegan_jax.metrics import inception
    monkeypatch.setattr(inception, 'FeatureExtractor', ProjectionFeatures)
    monkeypatch.setattr(inception, 'load_params', lambda path: None)


def test_parse_expand_apply_and_names():
    assert study.parse_sweep('data.photo_ratio=0,0.25, 1') == ('data.photo_ratio', [0, 0.25, 1])
    assert study.parse_sweep('ada.mode=fixed,off') == ('ada.mode', ['fixed', 'off'])
    assert study.parse_sweep('data.photo_ratio=None,0.5') == ('data.photo_ratio', [None, 0.5])
    for bad in ('data.photo_ratio', '=1,2', 'train.freeze_d=1,1'):
        with pytest.raises(study.StudyError):
            study.parse_sweep(bad)
    combos = study.expand_sweeps([('a.x', [1, 2]), ('b.y', ['u', 'v'])])
    assert combos == [{'a.x': 1, 'b.y': 'u'}, {'a.x': 1, 'b.y': 'v'}, {'a.x': 2, 'b.y': 'u'}, {'a.x': 2, 'b.y': 'v'}]
    assert study.run_name({'data.photo_ratio': 0.25, 'train.freeze_d': 1}) == 'data.photo_ratio=0.25,train.freeze_d=1'
    c = tiny_demo_config()
    out = study.apply_values(c, {'data.photo_ratio': 1, 'train.total_kimg': 2})
    assert out.data.photo_ratio == 1 and out.train.total_kimg == 2.0 and isinstance(out.train.total_kimg, float)
    assert c.data.photo_ratio is None                                # the base config is not changed
    with pytest.raises(study.StudyError, match='not a config key'):
        study.apply_values(c, {'data.photo_ration': 0.5})
    with pytest.raises(study.StudyError, match="no section 'dta'"):
        study.apply_values(c, {'dta.photo_ratio': 0.5})
    with pytest.raises(study.StudyError, match='train.total_kimg'):
        study.apply_values(c, {'train.total_kimg': 'long'})


def test_sweep_writes_one_run_per_value_and_every_metric(tmp_path, fake_inception):
    c = tiny_demo_config()
    lines = []
    weights = tmp_path / 'weights.pth'
    weights.write_bytes(b'stand-in')
    record = study.run_study(c, [('data.photo_ratio', [0.0, 0.5, 1.0])], tmp_path, num_fake=24,
                             inception_weights=str(weights), train_fn=fake_train, config_file='configs/demo.py',
                             overrides=['--config.data.resolution=16'], log=lines.append)
    saved = json.loads((tmp_path / 'study.json').read_text())
    assert saved == json.loads(json.dumps(record))
    assert sorted(p.name for p in (tmp_path / 'runs').iterdir()) == \
        ['data.photo_ratio=0.0', 'data.photo_ratio=0.5', 'data.photo_ratio=1.0']
    assert saved['sweep'] == {'data.photo_ratio': [0.0, 0.5, 1.0]}
    assert saved['real_sets'] == {'all': 58, 'photos': 29, 'paintings': 29}   # the same for every run
    assert [r['train_images'] for r in saved['runs']] == [29, 58, 29]         # what each run trained on
    assert set(saved['metrics']) == {'swd', 'swd_16', 'fid', 'kid', 'kid_std'}
    for r in saved['runs']:
        assert set(r['metrics']) == {'all', 'photos', 'paintings'}
        for values in r['metrics'].values():
            assert set(values) == set(saved['metrics'])
            assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())
    # different generators, different numbers; the same generator scored twice, the same numbers
    swd_all = [r['metrics']['all']['swd'] for r in saved['runs']]
    assert len(set(swd_all)) == 3
    from PIL import Image
    fig = np.asarray(Image.open(tmp_path / 'study.png'))
    assert fig.ndim == 3 and fig.shape[0] > 300 and fig.shape[1] > 500
    assert any('real sets: all 58 images' in line for line in lines)
    # a second call without training evaluates the finished runs again, with the same numbers
    record2 = study.run_study(c, [('data.photo_ratio', [0.0, 0.5, 1.0])], tmp_path, num_fake=24, fid='off',
                              train=False, log=lambda s: None)
    assert [r['metrics']['all']['swd'] for r in record2['runs']] == swd_all


def test_missing_runs_and_unavailable_fid_are_clear(tmp_path, monkeypatch):
    c = tiny_demo_config()
    with pytest.raises(study.StudyError, match=r'data.photo_ratio=1: no finished checkpoint \(1 of 1'):
        study.run_study(c, [('data.photo_ratio', [1])], tmp_path, train=False, log=lambda s: None)
    monkeypatch.setenv('STYLEGAN_JAX_CACHE', str(tmp_path / 'empty_cache'))
    lines = []
    record = study.run_study(c, [('data.photo_ratio', [1])], tmp_path, num_fake=8, train_fn=fake_train,
                             log=lines.append)
    assert record['metric_notes']['fid'].startswith('FID/KID skipped: no Inception weights')
    assert set(record['metrics']) == {'swd', 'swd_16'}
    with pytest.raises(study.StudyError, match='FID/KID'):
        study.run_study(c, [('data.photo_ratio', [1])], tmp_path, num_fake=8, train=False, fid='on',
                        inception_weights=str(tmp_path / 'nope.pth'), log=lambda s: None)


def test_cli_jobs_list_and_errors(tmp_path):
    work = tmp_path / 'study'
    r = subprocess.run([sys.executable, '-m', 'stylegan_jax.study', '--config', 'configs/demo.py',
                        '--sweep', 'data.photo_ratio=0,1', '--sweep', 'train.freeze_d=0,1', '--workdir', str(work),
                        '--config.train.total_kimg=0.5', '--jobs'], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    jobs = (work / 'jobs.txt').read_text().splitlines()
    assert len(jobs) == 4
    assert jobs[1].endswith(f'--config configs/demo.py --workdir {work}/runs/data.photo_ratio=0,train.freeze_d=1 '
                            '--config.train.total_kimg=0.5 --config.data.photo_ratio=0 --config.train.freeze_d=1')
    r = subprocess.run([sys.executable, '-m', 'stylegan_jax.study', '--config', 'configs/demo.py',
                        '--sweep', 'data.photo_ration=0,1', '--workdir', str(tmp_path / 'bad')],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == ("stylegan_jax.study: error: --sweep data.photo_ration: not a config "
                                                 "key (the config has no 'photo_ration' in data)")
    assert not (tmp_path / 'bad' / 'runs').exists()
