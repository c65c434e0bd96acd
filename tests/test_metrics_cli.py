"""stylegan-metrics end to end on the fixture, its errors, image sources (folder/TFDS/checkpoint), Evaluator."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import sample
from stylegan_jax.metrics import cli, evaluator, inception, sources
from stylegan_jax.metrics.inception import MetricsError
from stylegan_jax.metrics.stats import FeatureStats


@pytest.fixture(scope='module')
def inc(fixtures_dir):
    return fixtures_dir / 'inception'


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.strip()][-1])


def test_cli_json_matches_pytorch_fid(inc, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('STYLEGAN_JAX_CACHE', str(tmp_path / 'cache'))
    rc = cli.main(['--metrics', 'fid,kid,is', '--real', str(inc / 'real'), '--fake', str(inc / 'fake'),
                   '--inception-weights', str(inc / 'pt_inception-random.pth'), '--batch', '16', '--json',
                   '--save-stats', str(tmp_path / 'real.npz')])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = last_json(out)
    exp = json.loads((inc / 'expected.json').read_text())
    assert set(got) == {'fid', 'kid_mean', 'kid_std', 'is_mean', 'is_std'}
    assert got['fid'] == pytest.approx(exp['fid'], rel=1e-3)
    assert got['is_mean'] == pytest.approx(exp['is_mean'], rel=1e-3)
    assert got['is_std'] == pytest.approx(exp['is_std'], rel=1e-3)
    assert got['kid_mean'] == pytest.approx(exp['kid_mean'], abs=1e-4)
    # The saved real statistics are those of pytorch-fid's features, and the cache holds the same file.
    saved = FeatureStats.load(tmp_path / 'real.npz')
    feats = np.load(inc / 'expected.npz')['feats_real']
    np.testing.assert_allclose(saved.mu, feats.mean(0), atol=1e-4)
    np.testing.assert_allclose(saved.features, feats, atol=1e-4)
    assert len(list((tmp_path / 'cache' / 'fid_stats').glob('*.npz'))) == 1


@pytest.mark.parametrize('args, message', [
    (['--real', '{t}/nope', '--fake', '{t}/imgs'], 'nope: no such file or directory'),
    (['--real', '{t}/empty', '--fake', '{t}/imgs'], 'empty: no images found'),
    (['--real', '{t}/imgs', '--fake', '{t}/imgs', '--metrics', 'fid,bogus'], "unknown metric 'bogus'"),
    (['--real', '{t}/imgs', '--fake', '{t}/imgs', '--inception-weights', '{t}/w.pth'],
     'w.pth: Inception weights file not found'),
    (['--real', '{t}/imgs', '--fake', '{t}/imgs', '--inception-weights', '{t}/imgs/0.png'],
     '0.png: cannot read Inception weights'),
    (['--real', '{t}/junk.npz', '--fake', '{t}/imgs'], 'junk.npz: cannot read statistics file'),
    (['--fake', '{t}/imgs'], '--real is required'),
    (['--real', '{t}/bad', '--fake', '{t}/imgs', '--inception-weights', '{w}'], 'broken.png: cannot read image'),
])
def test_cli_errors_are_one_line(args, message, tmp_path, inc, capsys):
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'bad').mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'imgs' / '0.png')
    (tmp_path / 'bad' / 'broken.png').write_bytes(b'\x89PNG not really')
    (tmp_path / 'junk.npz').write_bytes(b'junk')
    argv = [a.format(t=tmp_path, w=inc / 'pt_inception-random.pth') for a in args]
    assert cli.main(argv + ['--quiet']) == 1
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('stylegan-metrics: error: ') and message in lines[0], err
    assert out == ''


def test_console_entry_point_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'stylegan_jax.metrics', '--real', str(tmp_path / 'missing'),
                        '--fake', str(tmp_path), '--json'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f'stylegan-metrics: error: {tmp_path / "missing"}: no such file or directory'


def write_tfds(data_dir, images):
    """A TFDS dataset dir data_dir/tiny/1.0.0 (image PNG + label), written with the tfds feature/metadata API.

    (`store_as_tfds_dataset` would need importlib_resources, which this environment lacks.)
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    version_dir = data_dir / 'tiny' / '1.0.0'
    version_dir.mkdir(parents=True)
    features = tfds.features.FeaturesDict({'image': tfds.features.Image(shape=(None, None, 3), encoding_format='png'),
                                           'label': tfds.features.ClassLabel(names=['a', 'b'])})
    with tf.io.TFRecordWriter(str(version_dir / 'tiny-train.tfrecord-00000-of-00001')) as w:
        for i, im in enumerate(images):
            w.write(features.serialize_example({'image': im, 'label': i % 2}))
    tfds.folder_dataset.write_metadata(data_dir=str(version_dir), features=features, split_infos=None,
                                       filename_template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}')


def test_folder_and_tfds_sources_read_the_same_images(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 12, 12, 3), dtype=np.uint8)
    folder = tmp_path / 'folder' / 'sub'
    folder.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f'{i:03d}.png')
    Image.fromarray(images[0][..., 0]).save(tmp_path / 'folder' / 'grey.png')  # grey -> RGB, sorted first
    write_tfds(tmp_path / 'tfds', images)
    src = sources.open_source(tmp_path / 'folder')
    assert isinstance(src, sources.FolderSource) and src.count(None) == 8
    got = np.concatenate(list(src.batches(3)))
    assert np.array_equal(got[0], np.repeat(images[0][..., :1], 3, -1)) and np.array_equal(got[1:], images)
    assert np.concatenate(list(src.batches(3, num=5))).shape == (5, 12, 12, 3)
    for p in (tmp_path / 'tfds', tmp_path / 'tfds' / 'tiny', tmp_path / 'tfds' / 'tiny' / '1.0.0'):
        t = sources.open_source(p)
        assert isinstance(t, sources.TFDSSource) and t.count(None) == 7 and t.count(4) == 4
        assert np.array_equal(np.concatenate(list(t.batches(4))), images)  # stored order, lossless PNG
    assert sources.open_source(tmp_path / 'tfds').fingerprint() != src.fingerprint()


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    from stylegan_jax import checkpoint, networks

    cfg = networks.NetworkConfig(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=1, channel_base=64,
                                 channel_max=8)
    # Random values of the right shapes: init_generator would compile ~125 eager ops (~10 s on 2 cores).
    shapes = jax.eval_shape(lambda: networks.Generator(cfg).init(
        {'params': jax.random.PRNGKey(0), 'noise': jax.random.PRNGKey(1)}, jax.numpy.zeros((1, cfg.z_dim))))
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)
    path = tmp_path_factory.mktemp('ckpt') / 'net'
    checkpoint.save_networks(path, cfg, {'G_ema': variables}, {'source': 'test'})
    return path, cfg, variables


def test_checkpoint_source_is_seeded(tiny_checkpoint):
    path, cfg, _ = tiny_checkpoint
    src = sources.open_source(path, seed=3)
    assert isinstance(src, sources.CheckpointSource) and src.count(None) == 50000 and src.count(5) == 5
    a = np.concatenate(list(src.batches(4, num=5)))
    b = np.concatenate(list(src.batches(4, num=5)))
    src.seed = 4  # (a new CheckpointSource would recompile G)
    c = np.concatenate(list(src.batches(4, num=5)))
    assert a.shape == (5, 8, 8, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_evaluator_fused_sampling_matches_extractor(tiny_checkpoint, inc, tmp_path):
    from stylegan_jax import networks

    path, cfg, variables = tiny_checkpoint
    weights = inc / 'pt_inception-random.pth'
    real = FeatureStats.from_features(np.load(inc / 'expected.npz')['feats_real'])
    real.save(tmp_path / 'real.npz')
    ev = evaluator.Evaluator(tmp_path / 'real.npz', weights, num_fake=3, batch=2, metrics=('fid', 'kid', 'is'))
    key = jax.random.PRNGKey(7)
    values = ev(cfg, variables, key)
    assert set(values) == {'fid', 'kid_mean', 'kid_std', 'is_mean', 'is_std'}
    feats = ev.fake_features(cfg, variables, key)
    assert feats['pool'].shape == (3, 2048)  # 2 batches of 2, the last one cut and feats['logits_unbiased'].shape == (3, 1008)
    assert values == evaluator.compute_metrics(ev.metrics, feats['pool'], feats['logits_unbiased'], real)
    assert all(np.isfinite(v) for v in values.values())
    # Redo the sampling outside the fused function: G -> uint8 -> FeatureExtractor.
    gen = jax.jit(lambda v, z, k: networks.Generator(cfg).apply(v, z, None, 1.0, None, 'random', rngs={'noise': k}))
    images = []
    for _ in range(2):
        key, sub = jax.random.split(key)
        kz, _, kn = jax.random.split(sub, 3)
        z = jax.random.normal(kz, (2, cfg.z_dim))
        images.append(sample.to_uint8(gen(variables, z, kn)))
    want = inception.FeatureExtractor(ev.params, 2)(np.concatenate(images)[:3])
    np.testing.assert_allclose(feats['pool'], want['pool'], atol=1e-4)
    assert np.abs(want['pool']).max() > 0.1  # not a trivially-zero comparison


def test_evaluator_without_weights_raises_metrics_error(tmp_path):
    with pytest.raises(MetricsError, match='Inception weights file not found'):
        evaluator.Evaluator(tmp_path / 'real.npz', tmp_path / 'missing.pth')
