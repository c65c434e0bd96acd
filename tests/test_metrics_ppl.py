"""PPL against its definition (a directional derivative), the percentile filter, and the CLI; zip and recorded real sets."""
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import checkpoint, networks
from stylegan_jax.metrics import cli, ppl, sources
from stylegan_jax.perceptual import distance
from _creator_fixtures import isolated_cache, sampler  # noqa: F401 (pytest fixtures)




def test_pair_distance_is_the_squared_directional_derivative(sampler, crop=True):
    """For sampling 'end' (t = 0), d -> ||d/dt f(G(lerp(w0, w1, t)))||^2 as eps -> 0."""
    cfg, v = sampler.cfg, sampler.variables
    gen, dist = networks.Generator(cfg), distance.pixel()
    rs = np.random.RandomState(0)
    z0, z1 = (jnp.asarray(rs.randn(3, cfg.z_dim), jnp.float32) for _ in range(2))
    key = jax.random.PRNGKey(5)
    d = ppl.pair_distances(gen, v, dist, z0, z1, jnp.zeros((3, 1)), None, key, 'w', crop, epsilon=1e-3)
    w0 = gen.apply(v, z0, method=networks.Generator.map)
    w1 = gen.apply(v, z1, method=networks.Generator.map)

    def f(ws):
        img = gen.apply(v, ws, 'random', method=networks.Generator.synthesize, rngs={'noise': key})
        return dist.features(ppl.crop_and_shrink(img, crop))
    _, jv = jax.jvp(f, (w0,), (w1 - w0,))
    np.testing.assert_allclose(np.asarray(d), np.asarray(jnp.sum(jv ** 2, axis=1)), rtol=0.05)


def test_crop_is_the_reference_face_window():
    img = jnp.arange(64 * 64, dtype=jnp.float32).reshape(1, 64, 64, 1)
    out = ppl.crop_and_shrink(img, True)
    assert out.shape == (1, 32, 32, 1) and float(out[0, 0, 0, 0]) == 24 * 64 + 16  # rows 3c.., cols 2c.., c = 8


def test_percentile_filter():
    d = np.arange(1000, dtype=np.float64)
    d[0], d[-1] = -1e9, 1e9  # outliers are dropped
    assert ppl.filtered_mean(d) == pytest.approx(np.arange(9, 991).mean())


def test_ppl_value(sampler):
    r = ppl.compute_named('ppl_wend', sampler.cfg, sampler.variables, distance.pixel(), num_samples=12, batch=8,
                          progress=False)
    assert len(r.distances) == 12 and r.value == pytest.approx(ppl.filtered_mean(r.distances))
    assert r.distance == 'pixel-laplacian' and r.value > 0


def test_cli_ppl_json(fixtures_dir, capsys):
    rc = cli.main(['--metrics', 'ppl2_wend', '--fake', str(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'),
                   '--num', '16', '--ppl-batch', '8', '--json', '--quiet'])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got['ppl_distance'] == 'pixel-laplacian' and got['ppl2_wend'] > 0
    assert 'PPL distance: pixel-laplacian' in err
    assert cli.main(['--metrics', 'ppl_bogus', '--fake', str(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl')]) == 1
    assert "unknown metric 'ppl_bogus'" in capsys.readouterr().err


def test_zip_dataset_is_the_same_images_as_the_folder(fixtures_dir, tmp_path):
    real = fixtures_dir / 'inception' / 'real'
    z = tmp_path / 'dataset.zip'
    with zipfile.ZipFile(z, 'w') as zf:
        for p in sorted(real.glob('*.png')):
            zf.write(p, f'00000/{p.name}')
        zf.writestr('dataset.json', json.dumps({'labels': None}))
    src = sources.open_source(z)
    assert isinstance(src, sources.ZipSource) and src.count(None) == 48
    a = np.concatenate(list(src.batches(16)))
    b = np.concatenate(list(sources.FolderSource(real).batches(16)))
    np.testing.assert_array_equal(a, b)
    small = np.concatenate(list(sources.ZipSource(z, resolution=32).batches(16)))
    assert small.shape == (48, 32, 32, 3)


def test_workdir_real_set_is_used_when_real_is_omitted(fixtures_dir, tmp_path, capsys):
    inc = fixtures_dir / 'inception'
    cfg, nets, _ = checkpoint.load_networks(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl', which=('G_ema',))
    work = tmp_path / 'conv'
    checkpoint.save_networks(work, cfg, nets, {'training': {'data': {'source': 'tfds', 'path': str(inc / 'real')},
                                                            'log': {'fid_real': ''}}})
    assert sources.recorded_real_set(work) == inc / 'real'
    rc = cli.main(['--metrics', 'fid', '--fake', str(work), '--num', '8', '--num-real', '8', '--batch', '8', '--json',
                   '--quiet', '--inception-weights', str(inc / 'pt_inception-random.pth'), '--no-cache'])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f'--real: {inc / "real"} (recorded by the training run; resized to 32px)' in err
    assert json.loads(out.strip().splitlines()[-1])['fid'] > 0
    bare = tmp_path / 'bare'
    checkpoint.save_networks(bare, cfg, nets, {})
    assert cli.main(['--fake', str(bare)]) == 1
    assert 'records no real set' in capsys.readouterr().err
