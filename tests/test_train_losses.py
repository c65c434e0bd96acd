"""StyleGAN2-ADA losses: R1 against finite differences, loss values on the sg2ada fixture networks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import networks
from stylegan_jax.convert import sg2ada, to_flax
from stylegan_jax.train import augment as aug
from stylegan_jax.train import losses

# Cheap ops only (the geometric path costs compile time and is covered by test_augment): the R1
# gradient must go through them to the un-augmented input.
SPEC = aug.AugmentSpec(xflip=1, rotate90=1, xint=1, brightness=1, contrast=1, saturation=1)


@pytest.fixture(scope='module')
def tiny_d():
    cfg = networks.NetworkConfig(z_dim=8, w_dim=8, img_resolution=8, mapping_layers=1, channel_base=64,
                                 channel_max=8, mbstd_group_size=2)
    d = networks.init_discriminator(cfg, jax.random.PRNGKey(1))
    x = jax.random.uniform(jax.random.PRNGKey(2), (2, 8, 8, 3), minval=-1, maxval=1)
    return cfg, d['params'], x


def test_r1_penalty_is_squared_gradient_wrt_unaugmented_reals(tiny_d):
    cfg, params, x = tiny_d
    lcfg = losses.LossConfig(augment_spec=SPEC)
    key, p = jax.random.PRNGKey(3), jnp.float32(1.0)
    penalty, logits = jax.jit(lambda x: losses.r1_penalty_fn(params, x, None, key, p, cfg, lcfg))(x)

    # Central differences of sum(D(augment(x))) over every input pixel (D couples images via mbstd).
    total = jax.jit(jax.vmap(lambda xx: jnp.sum(losses.run_D(cfg, params, xx, None, key, p, SPEC))))
    h = 1e-2
    eye = jnp.eye(x.size, dtype=jnp.float32).reshape((x.size,) + x.shape) * h
    fd = (total(x[None] + eye) - total(x[None] - eye)) / (2 * h)
    fd_penalty = np.sum(np.square(np.asarray(fd).reshape(x.shape)), axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(penalty), fd_penalty, rtol=2e-2)
    # Augmentation is really on (p = 1): logits differ from D on the raw images.
    raw = losses.run_D(cfg, params, x, None, key, p, None)
    assert not np.allclose(np.asarray(raw), np.asarray(logits), atol=1e-3)


def test_r1_loss_parameter_gradient_matches_finite_differences(tiny_d):
    cfg, params, x = tiny_d
    lcfg = losses.LossConfig(r1_gamma=10.0, augment_spec=SPEC)
    key = jax.random.split(jax.random.PRNGKey(4), 1)[0]
    p = jnp.float32(0.5)
    loss_fn = jax.jit(lambda prm: losses.d_r1_loss(prm, x, jnp.zeros((2, 0)), key, p, cfg, lcfg)[0])
    grads = jax.grad(loss_fn)(params)
    dot = lambda a, b: sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),  # noqa: E731
                                                          jax.tree_util.tree_leaves(b)))
    rng = np.random.RandomState(0)
    rand = lambda tree: jax.tree_util.tree_map(lambda l: jnp.asarray(rng.randn(*np.shape(l)), jnp.float32), tree)  # noqa: E731

    # Finite differences need a direction in which the loss is smooth: lrelu kinks make the R1 penalty
    # only piecewise smooth in the hidden layers' weights, but it is exactly quadratic in D's output
    # layer (the activations feeding it do not move), so central differences are exact there.
    direction = jax.tree_util.tree_map(jnp.zeros_like, params)
    direction['b4']['out'] = rand(params['b4']['out'])
    h = 1e-2
    shift = lambda s: jax.tree_util.tree_map(lambda a, d: a + s * h * d, params, direction)  # noqa: E731
    fd = (loss_fn(shift(1)) - loss_fn(shift(-1))) / (2 * h)
    analytic = dot(grads, direction)
    assert abs(float(analytic)) > 1e-3  # the check below is not vacuous
    np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-2)

    # All layers: reverse-over-reverse (what training uses) equals forward-over-reverse.
    direction = rand(params)
    _, jvp = jax.jvp(loss_fn, (params,), (direction,))
    np.testing.assert_allclose(float(dot(grads, direction)), float(jvp), rtol=1e-3)


# --------------------------------------------------------------------------- fixture networks

@pytest.fixture(scope='module')
def fixture_nets(fixtures_dir):
    conv = to_flax.networks_from_torch_style(sg2ada.load_sg2ada(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'),
                                             w_avg_samples=100)
    vec = np.load(fixtures_dir / 'sg2ada' / 'vectors.npz')
    g = conv.variables['G_ema']
    # No noise: G(z) must then equal the fixture's noise_mode='none' images whatever the noise draws.
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: np.zeros_like(x) if 'noise_strength' in jax.tree_util.keystr(path) else x, g['params'])
    nhwc = lambda a: jnp.asarray(np.transpose(a, (0, 2, 3, 1)))  # noqa: E731
    return conv.cfg, params, g['buffers'], conv.variables['D']['params'], vec, nhwc


def test_fixture_losses_match_direct_computation(fixture_nets):
    cfg, g_params, g_buffers, d_params, vec, nhwc = fixture_nets
    lcfg = losses.LossConfig(style_mixing_prob=0.0, augment_spec=None)
    disc = networks.Discriminator(cfg)
    real, nonoise = nhwc(vec['img_psi1_const']), nhwc(vec['img_psi1_nonoise'])
    real_logits = np.asarray(disc.apply({'params': d_params}, real))[:, 0]
    np.testing.assert_allclose(real_logits, vec['d_logits_img_psi1'][:, 0], atol=1e-4, rtol=1e-4)
    fake_logits = np.asarray(disc.apply({'params': d_params}, nonoise))[:, 0]
    softplus = lambda t: np.log1p(np.exp(t))  # noqa: E731

    z = jnp.asarray(vec['z'])  # one chunk of 4
    c = jnp.zeros((4, 0))
    key = jax.random.PRNGKey(0)
    loss, aux = losses.g_main_loss(g_params, g_buffers, d_params, z, c, key, jnp.float32(0), cfg, lcfg)
    np.testing.assert_allclose(float(loss), np.mean(softplus(-fake_logits)), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(aux['w_mean']), vec['ws_psi1'][:, 0].mean(0), rtol=1e-4, atol=1e-5)

    loss, aux = losses.d_main_loss(d_params, {'params': g_params, 'buffers': g_buffers}, real, c, z, c, key,
                                   jnp.float32(0), cfg, lcfg)
    expected = np.mean(softplus(fake_logits)) + np.mean(softplus(-vec['d_logits_img_psi1'][:, 0]))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
    assert float(aux['real_sign_sum']) == np.sum(np.sign(vec['d_logits_img_psi1']))
    assert float(aux['real_count']) == 4

    # R1: (gamma / 2) * mean over images of |d sum(D(x)) / dx|^2 (D via the plain network).
    gamma = 3.0
    r1, _ = losses.d_r1_loss(d_params, real, c, key, jnp.float32(0),
                             cfg, losses.LossConfig(r1_gamma=gamma, augment_spec=None))
    grad = jax.grad(lambda x: jnp.sum(disc.apply({'params': d_params}, x)))(real)
    np.testing.assert_allclose(float(r1), gamma / 2 * float(jnp.mean(jnp.sum(grad ** 2, axis=(1, 2, 3)))), rtol=1e-4)


def test_fixture_path_length_matches_explicit_jacobian(fixture_nets):
    cfg, g_params, g_buffers, _, vec, _ = fixture_nets
    lcfg = losses.LossConfig(style_mixing_prob=0.0, augment_spec=None, pl_weight=2.0, pl_decay=0.01,
                             pl_batch_shrink=2)
    z = jnp.asarray(vec['z'][:2])  # 2 latents, shrunk to 1
    key = jax.random.PRNGKey(5)
    pl_mean = jnp.float32(0.3)
    loss, aux = losses.g_pl_loss(g_params, g_buffers, pl_mean, z, jnp.zeros((2, 0)), key, cfg, lcfg)

    # Direct: the full Jacobian d img / d ws at the fixture's ws (mapping output), contracted with the
    # documented PL noise draw (third key of split(key, 3)), normalised by sqrt(H W).
    ws = jnp.asarray(vec['ws_psi1'][:1])
    synth = lambda w: networks.Generator(cfg).apply({'params': g_params, 'buffers': g_buffers}, w, 'none',  # noqa: E731
                                                    method=networks.Generator.synthesize)
    jac = jax.jacfwd(synth)(ws)  # [1, 32, 32, 3, 1, num_ws, w_dim]
    y = jax.random.normal(jax.random.split(key, 3)[2], (1, 32, 32, 3)) / 32.0
    g = jnp.einsum('nhwc,nhwcmkd->nkd', y, jac)
    length = float(jnp.sqrt(jnp.mean(jnp.sum(g ** 2, axis=2), axis=1))[0])
    new_mean = 0.3 + (length - 0.3) * 0.01
    np.testing.assert_allclose(float(aux['pl_length']), length, rtol=1e-4)
    np.testing.assert_allclose(float(aux['pl_mean']), new_mean, rtol=1e-5)
    np.testing.assert_allclose(float(loss), 2.0 * (length - new_mean) ** 2, rtol=1e-3)


def test_sign_stats_count_only_finite_logits():
    """ADA's accumulators: a non-finite logit (a diverging float16 step) neither counts nor poisons the sum."""
    total, count = losses.sign_stats(jnp.array([2.0, 3.0, -0.5, np.nan, np.inf]))
    assert (float(total), float(count)) == (1.0, 3.0)
