"""Tests for stylegan_jax.metrics.swd (sliced Wasserstein distance on Laplacian-pyramid patches).

Known values: the exact 1-D W1 equals scipy's for sets of different sizes; for two Gaussians that
differ by a translation t, W1 along a unit direction u is |u . t|, so the sliced distance over
random directions in d dimensions is |t| E|u_1| = |t| Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)).
"""
import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from stylegan_jax.metrics import swd as swd_lib
from stylegan_jax.train.demo_data import draw_demo_image


def test_wasserstein_1d_is_exact_for_unequal_sizes():
    rng = np.random.default_rng(0)
    for n, m in ((37, 53), (10, 10), (1, 7), (64, 48)):
        a, b = rng.normal(size=(n, 4)), rng.gamma(2.0, size=(m, 4))
        got = swd_lib.wasserstein_1d(a, b)
        want = [wasserstein_distance(a[:, k], b[:, k]) for k in range(4)]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_sliced_wasserstein_of_translated_gaussians_matches_closed_form():
    d, shift = 147, 5.0   # 147 = 7 x 7 x 3, the descriptor size
    e_abs_u1 = math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
    rng = np.random.default_rng(1)
    t = np.zeros(d)
    t[0] = shift
    a, b = rng.normal(size=(6000, d)), rng.normal(size=(5000, d)) + t
    got = swd_lib.sliced_wasserstein(a, b, num_directions=512)
    assert got == pytest.approx(shift * e_abs_u1, rel=0.08)       # 0.33: 512 directions, ~3% noise
    same = swd_lib.sliced_wasserstein(a, rng.normal(size=(5000, d)), num_directions=512)
    assert same < 0.1 * got                                         # sampling noise only


def test_laplacian_pyramid_levels_and_reconstruction():
    x = np.random.default_rng(2).uniform(0, 255, (3, 64, 64, 3)).astype(np.float32)
    levels = swd_lib.laplacian_pyramid(x)
    assert [lv.shape[1] for lv in levels] == [64, 32, 16]
    # band-pass + up-sampled coarser level gives back each level exactly (the pyramid loses nothing)
    rec = levels[-1]
    for band in reversed(levels[:-1]):
        rec = band + swd_lib._up(rec)
    np.testing.assert_allclose(rec, x, atol=1e-3)
    # a constant is reproduced by down- and up-sampling: it lives in the low-pass level only
    flat = swd_lib.laplacian_pyramid(np.full((1, 32, 32, 3), 7.0, np.float32))
    np.testing.assert_allclose(flat[0], 0, atol=1e-4)
    np.testing.assert_allclose(flat[1], 7, atol=1e-4)
    with pytest.raises(ValueError, match='at least 16x16'):
        swd_lib.laplacian_pyramid(np.zeros((1, 8, 8, 3)))


def _elves(seed: int, n: int) -> np.ndarray:
    return np.stack([draw_demo_image('elves', seed, i, 32)[0] for i in range(n)])


def test_swd_identical_sets_zero_and_grows_with_a_known_shift():
    real = _elves(0, 40).astype(np.float32)
    metric = swd_lib.SWD(real)
    assert metric.level_names == ['swd_32', 'swd_16']
    same = metric(real)
    assert set(same) == {'swd', 'swd_32', 'swd_16'}
    assert all(v == 0.0 for v in same.values())                     # same images, same patches: exactly 0
    floor = metric(_elves(1, 40))['swd']                            # another sample of the same distribution
    shifts = [8.0, 16.0, 32.0]
    results = [metric(real + s) for s in shifts]                    # a uniform brightness shift (no clipping:
    values = [r['swd'] for r in results]                            # float images)
    assert floor < values[0] < values[1] < values[2]
    # the shift is a constant: the band-pass level does not see it, the low-pass level sees it linearly
    assert all(r['swd_32'] < 1e-6 for r in results)
    assert values[2] / values[1] == pytest.approx(2.0, rel=1e-3) and values[1] / values[0] == pytest.approx(2.0, rel=1e-3)
    # ... and that is |t| E|u_1| x 1e3 / 2 levels, t = the shift in units of the real set's channel std
    lows = swd_lib.laplacian_pyramid(real)[-1]
    desc = swd_lib.descriptors(lows, swd_lib._positions(0, 1, len(lows), 16, 128, 7))
    std = desc.reshape(-1, 3).std(axis=0)
    d = 147
    e_abs_u1 = math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
    t_norm = math.sqrt(49 * float(((32.0 / std) ** 2).sum()))
    assert values[2] == pytest.approx(1e3 * t_norm * e_abs_u1 / 2, rel=0.1)


def test_swd_separates_domains_and_each_normalisation_ignores_colour_affine():
    elves = _elves(0, 48)
    portraits = np.stack([draw_demo_image('portraits', 0, i, 32)[0] for i in range(48)])
    metric = swd_lib.SWD(elves)
    assert metric(portraits)['swd'] > 5 * metric(_elves(1, 48))['swd']
    # ProGAN's code normalises each set with its own statistics: per-channel gain/offset is invisible
    x = elves.astype(np.float32)
    graded = x * np.array([0.8, 1.1, 0.9], np.float32) + np.array([20, -5, 10], np.float32)
    each = swd_lib.swd(x, graded, normalize='each')
    assert each['swd'] < 1e-3
    assert swd_lib.swd(x, graded)['swd'] > 50                      # the default ('real') sees the colour grade


def test_swd_rejects_bad_input():
    with pytest.raises(ValueError, match='normalize'):
        swd_lib.SWD(np.zeros((2, 16, 16, 3)), normalize='bogus')
    metric = swd_lib.SWD(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r'\[N, 32, 32, C\]'):
        metric(np.zeros((2, 16, 16, 3), np.uint8))
