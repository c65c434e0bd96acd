"""Networks against the reference fixtures (StyleGAN2-ADA and rosinality) and network invariants."""
import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import networks
from stylegan_jax.convert import rosinality, sg2ada, to_flax
from stylegan_jax.networks import Discriminator, Generator, NetworkConfig


@functools.partial(jax.jit, static_argnames=('cfg', 'cutoff', 'mode'))
def run_g(variables, z, c=None, psi=1.0, *, cfg, cutoff=None, mode='const', seed=0):
    return Generator(cfg).apply(variables, z, c, psi, cutoff, mode, rngs={'noise': jax.random.PRNGKey(seed)})


@functools.partial(jax.jit, static_argnames=('cfg', 'cutoff'))
def run_map(variables, z, c=None, psi=1.0, *, cfg, cutoff=None):
    return Generator(cfg).apply(variables, z, c, psi, cutoff, method=Generator.map)


@functools.partial(jax.jit, static_argnames=('cfg',))
def run_d(variables, img, c=None, *, cfg):
    return Discriminator(cfg).apply(variables, img, c)


def nchw(x):
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def nhwc(x):
    return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


@pytest.fixture(scope='module')
def ada(fixtures_dir):
    conv = to_flax.networks_from_torch_style(sg2ada.load_sg2ada(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'))
    return conv, np.load(fixtures_dir / 'sg2ada' / 'vectors.npz')


@pytest.fixture(scope='module')
def rosi(fixtures_dir):
    nets = rosinality.load_rosinality(fixtures_dir / 'rosinality' / 'checkpoint.pt')
    vec = np.load(fixtures_dir / 'rosinality' / 'vectors.npz')
    nets.G_ema['mapping.w_avg'] = vec['mean_latent'][0]  # the truncation centre the fixture used
    return to_flax.networks_from_torch_style(nets), vec


def test_ada_config_inferred(ada):
    conv, _ = ada
    cfg = conv.cfg
    assert (cfg.z_dim, cfg.w_dim, cfg.img_resolution, cfg.mapping_layers) == (64, 64, 32, 2)
    assert (cfg.channel_base, cfg.channel_max, cfg.conv_clamp, cfg.mbstd_group_size) == (512, 32, 256, 4)
    assert set(conv.variables) == {'G_ema', 'G', 'D'}


@pytest.mark.parametrize('psi,key', [(1.0, 'ws_psi1'), (0.5, 'ws_psi05')])
def test_ada_mapping(ada, psi, key):
    conv, vec = ada
    ws = run_map(conv.variables['G_ema'], vec['z'], None, psi, cfg=conv.cfg)
    np.testing.assert_allclose(np.asarray(ws), vec[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize('psi,mode,key', [(1.0, 'const', 'img_psi1_const'), (0.5, 'const', 'img_psi05_const'),
                                          (1.0, 'none', 'img_psi1_nonoise')])
def test_ada_images(ada, psi, mode, key):
    conv, vec = ada
    img = run_g(conv.variables['G_ema'], vec['z'], None, psi, cfg=conv.cfg, mode=mode)
    assert np.abs(nchw(img) - vec[key]).max() < 1e-3


def test_ada_raw_G_is_not_G_ema(ada):
    conv, vec = ada
    img = run_g(conv.variables['G'], vec['z'], None, 0.5, cfg=conv.cfg)
    assert np.abs(nchw(img) - vec['img_psi05_const']).max() > 1e-2


def test_ada_discriminator(ada):
    conv, vec = ada
    logits = run_d(conv.variables['D'], nhwc(vec['img_psi1_const']), cfg=conv.cfg)
    np.testing.assert_allclose(np.asarray(logits), vec['d_logits_img_psi1'], atol=1e-3, rtol=0)


def test_rosinality_mapping_and_truncation(rosi):
    conv, vec = rosi
    ws1 = run_map(conv.variables['G_ema'], vec['z'], None, 1.0, cfg=conv.cfg)
    np.testing.assert_allclose(np.asarray(ws1)[:, 0], vec['w'], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(ws1), vec['latent_trunc1'], atol=1e-4, rtol=0)
    ws05 = run_map(conv.variables['G_ema'], vec['z'], None, 0.5, cfg=conv.cfg)
    np.testing.assert_allclose(np.asarray(ws05), vec['latent_trunc05'], atol=1e-4, rtol=0)


@pytest.mark.parametrize('psi,mode,key', [(1.0, 'const', 'img_trunc1'), (0.5, 'const', 'img_trunc05'),
                                          (1.0, 'none', 'img_trunc1_zeronoise')])
def test_rosinality_images(rosi, psi, mode, key):
    conv, vec = rosi
    img = run_g(conv.variables['G_ema'], vec['z'], None, psi, cfg=conv.cfg, mode=mode)
    assert np.abs(nchw(img) - vec[key]).max() < 1e-3


def test_rosinality_style_mixing(rosi):
    conv, vec = rosi
    g = Generator(conv.cfg)
    ws = np.asarray(run_map(conv.variables['G_ema'], vec['z'], None, 1.0, cfg=conv.cfg))
    mixed = ws.copy()
    mixed[:, 3:] = ws[::-1, 3:]  # rosinality inject_index 3: layers >= 3 from the second style
    np.testing.assert_allclose(mixed, vec['latent_mix'], atol=1e-4, rtol=0)
    img = jax.jit(lambda v, w: g.apply(v, w, 'const', method=Generator.synthesize))(conv.variables['G_ema'], mixed)
    assert np.abs(nchw(img) - vec['img_mix']).max() < 1e-3


def test_rosinality_discriminator_group_layout(rosi):
    conv, vec = rosi
    np.testing.assert_allclose(np.asarray(run_d(conv.variables['D'], nhwc(vec['img_trunc1']), cfg=conv.cfg)),
                               vec['d_logits'], atol=1e-3, rtol=0)
    both = nhwc(np.concatenate([vec['img_trunc1'], vec['img_trunc05']]))
    np.testing.assert_allclose(np.asarray(run_d(conv.variables['D'], both, cfg=conv.cfg)), vec['d_logits_b8'],
                               atol=1e-3, rtol=0)


def test_bf16_mixed_precision_close_to_float32(ada):
    conv, vec = ada
    cfg16 = dataclasses.replace(conv.cfg, num_fp16_res=2, d_num_fp16_res=2)
    img32 = run_g(conv.variables['G_ema'], vec['z'], cfg=conv.cfg)
    img16 = run_g(conv.variables['G_ema'], vec['z'], cfg=cfg16)
    assert img16.dtype == jnp.float32
    diff = float(jnp.abs(img16 - img32).max())
    scale = float(jnp.abs(img32).max())
    assert 0 < diff < 0.05 * scale, (diff, scale)  # bf16 has ~3 significant digits; differs, but stays close
    d32 = run_d(conv.variables['D'], img32, cfg=conv.cfg)
    d16 = run_d(conv.variables['D'], img32, cfg=cfg16)
    assert float(jnp.abs(d16 - d32).max()) < 0.05 * float(jnp.abs(d32).max()) + 1e-2


def test_truncation_cutoff_only_first_layers(ada):
    conv, vec = ada
    ws = np.asarray(run_map(conv.variables['G_ema'], vec['z'], None, 0.5, cfg=conv.cfg, cutoff=3))
    np.testing.assert_allclose(ws[:, :3], vec['ws_psi05'][:, :3], atol=1e-4)
    np.testing.assert_allclose(ws[:, 3:], vec['ws_psi1'][:, 3:], atol=1e-4)


def test_noise_modes():
    cfg = NetworkConfig(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=1, channel_base=64, channel_max=8)
    variables = networks.init_generator(cfg, jax.random.PRNGKey(0))
    # Noise strengths start at zero in the reference; give them a value so the modes differ.
    variables['params'] = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 1.0 if 'noise_strength' in jax.tree_util.keystr(p) else x, variables['params'])
    z = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    run = lambda mode, seed: run_g(variables, z, cfg=cfg, mode=mode, seed=seed)
    np.testing.assert_array_equal(run('const', 0), run('const', 1))
    assert float(jnp.abs(run('random', 0) - run('random', 1)).max()) > 1e-3
    assert float(jnp.abs(run('const', 0) - run('none', 0)).max()) > 1e-3
    with pytest.raises(ValueError, match='noise_mode'):
        run('bogus', 0)


def test_conditional_networks_use_labels():
    cfg = NetworkConfig(z_dim=8, w_dim=8, c_dim=3, img_resolution=8, mapping_layers=2, channel_base=64,
                        channel_max=8, mbstd_group_size=2)
    gv = networks.init_generator(cfg, jax.random.PRNGKey(0))
    dv = networks.init_discriminator(cfg, jax.random.PRNGKey(1))
    assert 'embed' in gv['params']['mapping'] and 'mapping' in dv['params']
    z = jnp.ones((2, 8))
    c0, c1 = jnp.eye(3)[jnp.array([0, 0])], jnp.eye(3)[jnp.array([1, 1])]
    img0 = run_g(gv, z, c0, cfg=cfg)
    img1 = run_g(gv, z, c1, cfg=cfg)
    assert img0.shape == (2, 8, 8, 3) and float(jnp.abs(img0 - img1).max()) > 0
    assert run_d(dv, img0, c0, cfg=cfg).shape == (2, 1)
    assert float(jnp.abs(run_d(dv, img0, c0, cfg=cfg) - run_d(dv, img0, c1, cfg=cfg)).max()) > 0
    with pytest.raises(ValueError, match='conditional'):
        run_g(gv, z, None, cfg=cfg)


def test_config_json_round_trip():
    cfg = NetworkConfig(z_dim=16, w_dim=32, img_resolution=64, conv_clamp=256.0, num_fp16_res=4)
    import json
    assert NetworkConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match='power of two'):
        NetworkConfig(img_resolution=48)
    with pytest.raises(ValueError, match='unknown'):
        NetworkConfig.from_dict({'bogus': 1})


# --------------------------------------------------------------------------- D architectures

D_ARCH = NetworkConfig(z_dim=8, w_dim=8, img_resolution=16, mapping_layers=1, channel_base=64, channel_max=8,
                       conv_clamp=256.0, mbstd_group_size=2)


@pytest.mark.parametrize('arch', ['orig', 'skip', 'resnet'])
def test_discriminator_architectures_match_reference(arch):
    """tests/data/sg2ada_d_arch.npz: the reference Discriminator(architecture=arch) at 16x16 (random init,
    written by tests/data/make_sg2ada_d_arch.py from a stylegan2-ada-pytorch checkout): same parameter
    names and shapes as ours, and the same logits."""
    data = np.load(pathlib.Path(__file__).with_name('data') / 'sg2ada_d_arch.npz')
    sd = {k.split('/', 1)[1]: data[k] for k in data if k.startswith(f'{arch}/') and not k.endswith('/logits')}
    cfg = dataclasses.replace(D_ARCH, d_architecture=arch)
    expected = to_flax.expected_variables(cfg, 'D')
    assert {n: tuple(v.shape) for n, (_, v) in expected.items()} == {n: v.shape for n, v in sd.items()}
    variables = to_flax.variables_from_state_dict(sd, cfg, 'D')
    logits = run_d(variables, nhwc(data['img']), cfg=cfg)
    np.testing.assert_allclose(np.asarray(logits), data[f'{arch}/logits'], rtol=1e-4, atol=1e-5)


def test_discriminator_architecture_is_checked():
    with pytest.raises(ValueError, match='d_architecture'):
        NetworkConfig(d_architecture='residual')
    with pytest.raises(ValueError, match='mixed_dtype'):
        NetworkConfig(mixed_dtype='float64')
    with pytest.raises(ValueError, match='fp32_precision'):
        NetworkConfig(fp32_precision='tf32')


@pytest.mark.parametrize('setting,want', [('highest', 'HIGHEST'), ('default', None)])
def test_fp32_precision_reaches_every_float32_conv_and_matmul(setting, want):
    """model.fp32_precision is the precision of the float32 layers' convolutions and matmuls (the
    reference disables TF32); the layers of a float16 block keep their native precision."""
    cfg = dataclasses.replace(D_ARCH, fp32_precision=setting, num_fp16_res=1, mixed_dtype='float16')
    gv = jax.eval_shape(lambda k: networks.init_generator(cfg, k), jax.random.PRNGKey(0))
    hlo = jax.jit(lambda v, z: Generator(cfg).apply(v, z, noise_mode='const')).lower(
        gv, jax.ShapeDtypeStruct((2, 8), jnp.float32)).as_text()
    ops = [l for l in hlo.splitlines() if 'stablehlo.convolution' in l or 'stablehlo.dot_general' in l]
    f32 = [l for l in ops if 'xf16>' not in l]
    f16 = [l for l in ops if 'xf16>' in l]
    assert f32 and f16
    if want:
        assert all(want in l for l in f32), [l for l in f32 if want not in l][:2]
    else:
        assert not any('HIGHEST' in l for l in f32)
    assert not any('HIGHEST' in l for l in f16)
