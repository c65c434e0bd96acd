"""Layer math against independent implementations: the upfirdn2d definition and torch's convolutions."""
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import layers

torch = pytest.importorskip('torch')
F = torch.nn.functional

FILTER = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0


def upfirdn_reference(x, f, up, down, pad, gain=1.0):
    """NHWC upfirdn2d straight from its definition: zero-insert, pad, 2-D true convolution, keep every down-th."""
    n, h, w, c = x.shape
    px0, px1, py0, py1 = pad
    t = np.zeros((n, h * up, w * up, c))
    t[:, ::up, ::up] = x
    t = np.pad(t, ((0, 0), (py0, py1), (px0, px1), (0, 0)))
    k = np.flip(f) * gain
    fh, fw = f.shape
    oh, ow = t.shape[1] - fh + 1, t.shape[2] - fw + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(fh):
        for j in range(fw):
            out += t[:, i:i + oh, j:j + ow] * k[i, j]
    return out[:, ::down, ::down]


@pytest.mark.parametrize('up,down,pad,gain', [(1, 1, (1, 1, 1, 1), 1.0), (2, 1, (2, 1, 2, 1), 4.0),
                                              (1, 2, (1, 1, 1, 1), 1.0), (1, 2, (2, 2, 2, 2), 1.0),
                                              (2, 1, (1, 1, 1, 1), 4.0), (1, 1, (0, 2, 1, 0), 1.0)])
def test_upfirdn2d_matches_definition(up, down, pad, gain):
    x = np.random.RandomState(0).randn(2, 6, 6, 3).astype(np.float32)
    got = np.asarray(layers.upfirdn2d(jnp.asarray(x), up=up, down=down, padding=pad, gain=gain))
    np.testing.assert_allclose(got, upfirdn_reference(x, FILTER, up, down, pad, gain), atol=1e-5)


def test_upsample_then_filter_keeps_dc():
    # A constant image stays constant in the interior after 2x upsampling (gain 4 compensates the zeros).
    y = np.asarray(layers.upsample2d(jnp.ones((1, 8, 8, 2))))
    assert y.shape == (1, 16, 16, 2)
    np.testing.assert_allclose(y[:, 2:-2, 2:-2], 1.0, atol=1e-6)


def test_conv_up_matches_torch_transposed_conv():
    rs = np.random.RandomState(1)
    x = rs.randn(2, 5, 5, 4).astype(np.float32)
    w = rs.randn(6, 4, 3, 3).astype(np.float32)  # [out, in, k, k]
    got = np.asarray(layers.conv2d_resample(jnp.asarray(x), jnp.asarray(w), up=2, padding=1))
    t = F.conv_transpose2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).transpose(0, 1), stride=2)
    t = t.permute(0, 2, 3, 1).numpy()
    want = upfirdn_reference(t, FILTER, 1, 1, (1, 1, 1, 1), 4.0)
    assert got.shape == (2, 10, 10, 6)
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize('k', [3, 1])
def test_conv_down_matches_torch(k):
    rs = np.random.RandomState(2)
    x = rs.randn(2, 8, 8, 3).astype(np.float32)
    w = rs.randn(5, 3, k, k).astype(np.float32)
    got = np.asarray(layers.conv2d_resample(jnp.asarray(x), jnp.asarray(w), down=2, padding=k // 2))
    p = 2 if k == 3 else 1
    filt = upfirdn_reference(x, FILTER, 1, 1, (p, p, p, p))
    want = F.conv2d(torch.from_numpy(filt.astype(np.float32)).permute(0, 3, 1, 2), torch.from_numpy(w), stride=2)
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), atol=1e-4)


@pytest.mark.parametrize('up,demod', [(1, True), (2, True), (1, False)])
def test_modulated_conv_equals_grouped_per_sample_conv(up, demod):
    rs = np.random.RandomState(3)
    n, cin, cout = 3, 4, 5
    x = rs.randn(n, 6, 6, cin).astype(np.float32)
    w = rs.randn(cout, cin, 3, 3).astype(np.float32)
    s = rs.uniform(0.5, 1.5, (n, cin)).astype(np.float32)
    got = np.asarray(layers.modulated_conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), demodulate=demod,
                                             up=up, padding=1))
    # The reference "fused" form: per-sample weights in one grouped convolution.
    ww = w[None] * s[:, None, :, None, None]
    if demod:
        ww = ww / np.sqrt((ww ** 2).sum(axis=(2, 3, 4), keepdims=True) + 1e-8)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).reshape(1, n * cin, 6, 6)
    if up == 1:
        y = F.conv2d(xt, torch.from_numpy(ww.reshape(n * cout, cin, 3, 3)), padding=1, groups=n)
        want = y.reshape(n, cout, 6, 6).permute(0, 2, 3, 1).numpy()
    else:
        wt = torch.from_numpy(ww).transpose(1, 2).reshape(n * cin, cout, 3, 3)
        y = F.conv_transpose2d(xt, wt, stride=2, groups=n).reshape(n, cout, 13, 13).permute(0, 2, 3, 1).numpy()
        want = upfirdn_reference(y, FILTER, 1, 1, (1, 1, 1, 1), 4.0)
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_minibatch_stddev_matches_direct_formula():
    rs = np.random.RandomState(4)
    x = rs.randn(8, 4, 4, 6).astype(np.float32)
    got = np.asarray(layers.minibatch_stddev(jnp.asarray(x), group_size=4, num_channels=2))
    assert got.shape == (8, 4, 4, 8)
    m = 8 // 4
    for i in range(8):
        members = x[np.arange(4) * m + i % m]  # samples i % m, i % m + m, ... share a group
        for f in range(2):
            sd = np.sqrt(members[..., f * 3:(f + 1) * 3].var(axis=0) + 1e-8).mean()
            np.testing.assert_allclose(got[i, :, :, 6 + f], sd, rtol=1e-5)
    with pytest.raises(ValueError, match='divisible'):
        layers.minibatch_stddev(jnp.asarray(x[:6]), group_size=4)


def test_bias_act_order_gain_then_clamp():
    x = jnp.array([-10.0, 0.5, 300.0])
    y = np.asarray(layers.bias_act(x, jnp.array(1.0), 'lrelu', clamp=256.0))
    np.testing.assert_allclose(y, [-9 * 0.2 * np.sqrt(2), 1.5 * np.sqrt(2), 256.0], rtol=1e-6)


def test_float16_modulated_conv_prenormalisation_prevents_overflow():
    """Reference modulated_conv2d: with float16 activations, weight and styles are divided by their
    max-norms first. Activations of 100 (conv_clamp allows 256) times styles of 1000 are 1e5 > 65504:
    without it x * styles is Inf; with it the result is finite and equals the float32 computation."""
    rs = np.random.RandomState(5)
    x = (rs.uniform(-100, 100, (2, 6, 6, 8))).astype(np.float32)
    w = rs.randn(4, 8, 3, 3).astype(np.float32)
    s = rs.uniform(500, 1000, (2, 8)).astype(np.float32)
    want = np.asarray(layers.modulated_conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s), padding=1))
    got = layers.modulated_conv2d(jnp.asarray(x, jnp.float16), jnp.asarray(w), jnp.asarray(s), padding=1)
    assert got.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-2, atol=1e-2 * np.abs(want).max())
    naive = jnp.asarray(x, jnp.float16) * jnp.asarray(s, jnp.float16)[:, None, None, :]  # the unnormalised product
    assert not np.all(np.isfinite(np.asarray(naive, np.float32)))
    # bfloat16 (float32's exponent range) needs no pre-normalisation and gets none (the reference: fp16 only).
    bf = layers.modulated_conv2d(jnp.asarray(x, jnp.bfloat16), jnp.asarray(w), jnp.asarray(s), padding=1)
    np.testing.assert_allclose(np.asarray(bf, np.float32), want, rtol=3e-2, atol=3e-2 * np.abs(want).max())
