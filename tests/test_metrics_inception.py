"""The Flax FID Inception against pytorch-fid's features on the fixture; resize, pooling, weights, download."""
import functools
import http.server
import threading
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import sample
from stylegan_jax.metrics import inception
from stylegan_jax.metrics.inception import FeatureExtractor, MetricsError

N = 8  # images compared here, half real, half fake (the CLI test checks all 48 real features end to end)
BATCH = 16  # same as the CLI test so the compiled network is shared


@pytest.fixture(scope='session')
def inc_dir(fixtures_dir):
    return fixtures_dir / 'inception'


@pytest.fixture(scope='session')
def inc_params(inc_dir):
    return inception.load_params(inc_dir / 'pt_inception-random.pth')


def load_pngs(folder: Path, n: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert('RGB')) for p in sorted(folder.glob('*.png'))[:n]])


def test_features_and_logits_match_pytorch_fid(inc_dir, inc_params):
    exp = np.load(inc_dir / 'expected.npz')
    images = np.concatenate([load_pngs(inc_dir / 'real', N // 2), load_pngs(inc_dir / 'fake', N // 2)])
    want_pool = np.concatenate([exp['feats_real'][:N // 2], exp['feats_fake'][:N // 2]])
    want_logits = np.concatenate([exp['logits_real'][:N // 2], exp['logits_fake'][:N // 2]])
    out = FeatureExtractor(inc_params, BATCH).extract([images], progress=False, keys=('pool', 'logits', 'logits_unbiased'))
    assert out['pool'].shape == (N, 2048)
    np.testing.assert_allclose(out['pool'], want_pool, atol=1e-4, rtol=0)
    # Logits are sums of 2048 products of ~1e-4-accurate features with a scaled-up fc: relative check.
    np.testing.assert_allclose(out['logits'], want_logits, atol=2e-3 * np.abs(want_logits).max(), rtol=0)
    bias = np.asarray(inc_params['fc_bias'])
    np.testing.assert_allclose(out['logits'] - out['logits_unbiased'], np.broadcast_to(bias, (N, 1008)), atol=1e-4)


def test_float_input_is_quantised_like_uint8(inc_params, inc_dir):
    """Generator-style floats in [-1, 1] give the features of their uint8 quantisation (x*127.5+128)."""
    u8 = load_pngs(inc_dir / 'real', 2)
    as_float = (u8.astype(np.float32) - 127.5) / 127.5  # quantises back to exactly u8
    assert np.array_equal(np.asarray(sample.to_uint8(jnp.asarray(as_float))), u8)


@pytest.mark.parametrize('size', [(40, 52), (512, 300), (299, 299)])
def test_resize_matches_torch_interpolate(size):
    torch = pytest.importorskip('torch')
    x = np.random.default_rng(0).random((2, *size, 3), dtype=np.float32)
    got = np.asarray(inception.resize_bilinear(jnp.asarray(x), (299, 299)))
    want = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(299, 299),
                                           mode='bilinear', align_corners=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)  # float32 rounding; antialiasing would be ~0.4 off at 512
    if size == (299, 299):
        assert np.array_equal(got, x)


def test_avg_pool_excludes_padding():
    # count_include_pad=False: a constant map stays constant at the borders too.
    x = jnp.full((1, 5, 6, 2), 3.0)
    np.testing.assert_allclose(np.asarray(inception.avg_pool_exclude_pad(x)), 3.0, rtol=1e-6)
    # Corner of an arange map: mean of the 2x2 real neighbours.
    y = jnp.arange(16.0).reshape(1, 4, 4, 1)
    assert float(inception.avg_pool_exclude_pad(y)[0, 0, 0, 0]) == pytest.approx((0 + 1 + 4 + 5) / 4)


def test_state_dict_errors_name_the_key(inc_dir):
    from stylegan_jax.convert.unpickle import load_torch

    sd = load_torch(inc_dir / 'pt_inception-random.pth')
    bad = {k: v for k, v in sd.items() if k != 'Mixed_6b.branch7x7_2.bn.running_var'}
    with pytest.raises(MetricsError, match='Mixed_6b.branch7x7_2.bn.running_var'):
        inception.params_from_state_dict(bad, 'x.pth')
    bad = dict(sd, **{'fc.weight': np.zeros((1000, 2048), np.float32)})
    with pytest.raises(MetricsError, match='fc.weight has shape'):
        inception.params_from_state_dict(bad, 'x.pth')
    with pytest.raises(MetricsError, match='not found'):
        inception.load_params(inc_dir / 'nope.pth')


def test_legacy_torch_format_loads_the_same(inc_dir, inc_params, tmp_path):
    """The real weights file predates torch's zip format: the reader must give the same parameters."""
    torch = pytest.importorskip('torch')
    sd = torch.load(inc_dir / 'pt_inception-random.pth', map_location='cpu', weights_only=True)
    legacy = tmp_path / 'legacy.pth'
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    got = inception.load_params(legacy)
    for path in (('Mixed_7c', 'branch_pool', 'kernel'), ('Conv2d_1a_3x3', 'shift'), ('fc_kernel',)):
        a, b = got, inc_params
        for p in path:
            a, b = a[p], b[p]
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 (an offline stand-in for the weights URL)."""
    www = tmp_path / 'www'
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_download_checks_hash_and_caches(http_server, tmp_path, monkeypatch):
    www, url = http_server
    payload = b'inception weights stand-in' * 1000
    (www / 'w.pth').write_bytes(payload)
    (tmp_path / 'x').write_bytes(payload)
    digest = inception.sha256_file(tmp_path / 'x')
    monkeypatch.setenv('STYLEGAN_JAX_CACHE', str(tmp_path / 'cache'))
    with pytest.raises(MetricsError, match='does not start with'):
        inception.resolve_weights(None, f'{url}/w.pth', sha256_prefix='00000000', progress=False)
    assert not (tmp_path / 'cache' / 'w.pth').exists()
    assert list((tmp_path / 'cache').iterdir()) == []  # no partial file left behind
    got = inception.resolve_weights(None, f'{url}/w.pth', sha256_prefix=digest[:8], progress=False)
    assert got == tmp_path / 'cache' / 'w.pth' and got.read_bytes() == payload
    (www / 'w.pth').unlink()  # now served from the cache
    assert inception.resolve_weights(None, f'{url}/w.pth', sha256_prefix=digest[:8], progress=False) == got
    with pytest.raises(MetricsError, match='cannot download'):
        inception.resolve_weights(None, f'{url}/missing.pth', progress=False)
