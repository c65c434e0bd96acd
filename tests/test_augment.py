"""Tests for stylegan_jax.train.augment (ADA pipeline).

Expected numbers come from the reference (NVlabs stylegan2-ada-pytorch ``training/augment.py`` and
``train.py`` defaults), from identities (flip twice, rotate90 four times, Householder reflection
twice, hue by 2*pi, saturation 1, orthogonality of the sym6 filter) and from distributional facts
(std of a normal draw, Bernoulli frequencies) checked with 4-sigma tolerances.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.train import augment as _augment_module
from stylegan_jax.train.augment import (
    AugmentSpec,
    ada_update,
    apply_blit,
    apply_color,
    augment,
    rotate3d,
    sample_params,
)

KEY = jax.random.PRNGKey(0)
BGC = AugmentSpec.preset("bgc")
_aug = jax.jit(augment, static_argnames="spec")  # one compilation per (shape, spec); p is traced
apply_geom = jax.jit(_augment_module.apply_geom)  # eager op-by-op dispatch is far slower
LUMA = jnp.asarray([1.0, 1.0, 1.0, 0.0]) / np.sqrt(3.0)


def _images(n=8, h=16, w=16, c=3, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (n, h, w, c)).astype(np.float32))


def _smooth(h=32, w=32):
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    img = np.stack([np.sin(2 * np.pi * (0.07 * xx + 0.03 * yy)),
                    np.cos(2 * np.pi * (0.05 * yy - 0.02 * xx)),
                    np.sin(2 * np.pi * 0.04 * (xx + yy))], -1)
    return jnp.asarray(img[None].astype(np.float32))


def _eye3(n):
    return jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (n, 3, 3))


# ------------------------------------------------------------------------------------------------
# Spec / presets


def test_presets_and_defaults_match_reference():
    off = AugmentSpec()
    mults = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness",
             "contrast", "lumaflip", "hue", "saturation"]
    assert all(getattr(off, m) == 0 for m in mults)  # reference: everything disabled by default
    assert all(getattr(BGC, m) == 1 for m in mults)
    strengths = dict(xint_max=0.125, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
                     brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1)
    assert {k: getattr(BGC, k) for k in strengths} == strengths
    blit, geom, color = (AugmentSpec.preset(n) for n in ("blit", "geom", "color"))
    assert (blit.has_blit, blit.has_geom, blit.has_color) == (True, False, False)
    assert (geom.has_blit, geom.has_geom, geom.has_color) == (False, True, False)
    assert (color.has_blit, color.has_geom, color.has_color) == (False, False, True)
    bg = AugmentSpec.preset("bg")
    assert bg == dataclasses.replace(BGC, brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0)
    with pytest.raises(ValueError, match="unknown augment preset"):
        AugmentSpec.preset("bgcx")
    with pytest.raises(ValueError, match="xflip"):
        AugmentSpec(xflip=-1)
    hash(BGC)  # usable as a static jit argument


# ------------------------------------------------------------------------------------------------
# Whole pipeline


def test_p0_is_exact_identity_and_shape_dtype_preserved():
    x = _images()
    y0 = _aug(x, jnp.float32(0.0), KEY)
    assert np.array_equal(np.asarray(y0), np.asarray(x))
    y1 = _aug(x, jnp.float32(1.0), KEY)  # same compiled function, p traced
    assert y1.shape == x.shape and y1.dtype == x.dtype
    assert np.isfinite(np.asarray(y1)).all()
    assert not np.allclose(np.asarray(y1), np.asarray(x))
    # Non-square, single channel (reference: color matrix averaged over RGB rows, no hue/sat).
    g = _images(3, 12, 20, 1)
    assert np.array_equal(np.asarray(_aug(g, 0.0, KEY)), np.asarray(g))
    yg = _aug(g, 1.0, KEY)
    assert yg.shape == g.shape and yg.dtype == g.dtype and np.isfinite(np.asarray(yg)).all()


def test_determinism_by_key_and_jit_traces_once():
    x = _images()
    a = _aug(x, 0.7, KEY)
    b = _aug(x, 0.7, KEY)
    c = _aug(x, 0.7, jax.random.PRNGKey(1))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))

    traces = []

    def counted(images, p, key):
        traces.append(1)
        return augment(images, p, key)

    f = jax.jit(counted)
    for p in (0.0, 0.3, 1.0):
        f(x, jnp.float32(p), KEY).block_until_ready()
    assert len(traces) == 1  # p is a traced scalar, not a static value
    assert np.array_equal(np.asarray(f(x, jnp.float32(0.7), KEY)), np.asarray(a))


def test_gradients_flow_and_match_affine_map():
    x = _images()
    w = _images(seed=1)
    f = lambda im: jnp.sum(augment(im, 1.0, KEY) * w)  # noqa: E731
    g = jax.jit(jax.grad(f))(x)
    g = np.asarray(g)
    assert np.isfinite(g).all() and np.abs(g).max() > 0
    assert (np.abs(g) > 0).mean() > 0.5  # most pixels influence the output
    # The augmentation is affine in the images, so the first-order expansion is exact.
    d = _images(seed=2)
    ff = jax.jit(f)
    lhs = float(ff(x + d) - ff(x))
    rhs = float(np.sum(g * np.asarray(d)))
    assert lhs == pytest.approx(rhs, rel=1e-3, abs=1e-3)


def test_vmap_and_pmap():
    spec = AugmentSpec.preset("geom")
    x = _images(4, 12, 12).reshape(2, 2, 12, 12, 3)
    keys = jax.random.split(KEY, 2)
    f = jax.jit(jax.vmap(lambda im, k: augment(im, 1.0, k, spec)))
    got = np.asarray(f(x, keys))
    want = np.stack([np.asarray(_aug(x[i], 1.0, keys[i], spec=spec)) for i in range(2)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    n = jax.local_device_count()
    xp = _images(n, 8, 8).reshape(n, 1, 8, 8, 3)
    out = jax.pmap(lambda im, k: augment(im, 0.0, k, AugmentSpec.preset("blit")))(
        xp, jax.random.split(KEY, n))
    assert np.array_equal(np.asarray(out), np.asarray(xp))


def test_bad_input_raises_clear_error():
    with pytest.raises(ValueError, match="NHWC"):
        augment(jnp.zeros((16, 16, 3)), 0.5, KEY)
    with pytest.raises(ValueError, match="channels"):
        augment(jnp.zeros((2, 8, 8, 2)), 0.5, KEY, AugmentSpec.preset("color"))


# ------------------------------------------------------------------------------------------------
# Pixel blitting


def test_xflip_twice_is_identity():
    spec = AugmentSpec(xflip=1)
    x = _images(16)
    y = np.asarray(_aug(x, 1.0, KEY, spec=spec))
    xn = np.asarray(x)
    flipped = [np.array_equal(y[i], xn[i, :, ::-1]) for i in range(16)]
    same = [np.array_equal(y[i], xn[i]) for i in range(16)]
    assert all(f or s for f, s in zip(flipped, same))
    assert any(flipped) and any(same)  # with p=1 the flip is a fair coin (reference semantics)
    assert np.array_equal(np.asarray(_aug(jnp.asarray(y), 1.0, KEY, spec=spec)), xn)


def test_rotate90_four_times_is_identity():
    spec = AugmentSpec(rotate90=1)
    x = _images(16)
    xn = np.asarray(x)
    y = x
    for step in range(4):
        y = _aug(y, 1.0, KEY, spec=spec)
        if step == 0:
            yn = np.asarray(y)
            ks = [[k for k in range(4) if np.array_equal(yn[i], np.rot90(xn[i], k))]
                  for i in range(16)]
            assert all(len(k) == 1 for k in ks)  # each image is an exact 90-degree rotation
            assert len({k[0] for k in ks}) >= 3
    assert np.array_equal(np.asarray(y), xn)


def test_integer_translation_known_case_reflects_at_border():
    w = 16
    ramp = jnp.broadcast_to(jnp.arange(w, dtype=jnp.float32)[None, None, :, None], (1, 4, w, 1))
    # Reference: G_inv = translate2d_inv(tx, ty) -> content moves by +tx; torch 'reflect' padding.
    right2 = jnp.asarray([[[1, 0, -2], [0, 1, 0], [0, 0, 1]]], jnp.float32)
    left3 = jnp.asarray([[[1, 0, 3], [0, 1, 0], [0, 0, 1]]], jnp.float32)
    np.testing.assert_array_equal(np.asarray(apply_blit(ramp, right2))[0, 0, :, 0],
                                  [2, 1] + list(range(0, w - 2)))
    np.testing.assert_array_equal(np.asarray(apply_blit(ramp, left3))[0, 0, :, 0],
                                  list(range(3, w)) + [14, 13, 12])


def test_integer_translation_is_a_reflected_shift():
    spec = AugmentSpec(xint=1)
    n, h, w = 8, 16, 16
    x = np.asarray(_images(n, h, w))
    y = np.asarray(_aug(jnp.asarray(x), 1.0, KEY, spec=spec))
    tmax = int(round(0.125 * w))  # xint_max = 0.125 of the image size
    shifts = []
    for i in range(n):
        pad = np.pad(x[i], ((tmax, tmax), (tmax, tmax), (0, 0)), mode="reflect")
        hits = [(tx, ty) for tx in range(-tmax, tmax + 1) for ty in range(-tmax, tmax + 1)
                if np.array_equal(y[i], pad[tmax - ty:tmax - ty + h, tmax - tx:tmax - tx + w])]
        assert len(hits) == 1, hits
        shifts.append(hits[0])
        # Interior pixels are a permutation-free copy of input pixels (multiset preserved).
        tx, ty = hits[0]
        inner = y[i, tmax:h - tmax, tmax:w - tmax]
        src = x[i, tmax - ty:h - tmax - ty, tmax - tx:w - tmax - tx]
        assert sorted(inner.ravel().tolist()) == sorted(src.ravel().tolist())
    assert any(s != (0, 0) for s in shifts)


def test_blit_probabilities():
    p = 0.5
    n = 4096
    prm = sample_params(KEY, p, AugmentSpec(xflip=1), n, 16, 16)
    flipped = np.asarray(prm["blit"][:, 0, 0] == -1).mean()
    assert abs(flipped - p * 0.5) < 4 * np.sqrt(0.25 * 0.75 / n)  # gate p, then a fair coin
    prm = sample_params(KEY, 1.0, AugmentSpec(xint=1), n, 32, 16)
    t = np.asarray(prm["blit"][:, :2, 2])
    assert np.array_equal(t, np.round(t)) and np.abs(t[:, 0]).max() == 2 and np.abs(t[:, 1]).max() == 4


# ------------------------------------------------------------------------------------------------
# General geometric transformations


def test_geom_path_identity_and_translation_reconstruct():
    x = _images(2, 16, 16)
    # sym6 is orthogonal: 2x upsample + 2x downsample with it is the identity.
    np.testing.assert_allclose(np.asarray(apply_geom(x, _eye3(2))), np.asarray(x), atol=2e-6)
    t = jnp.asarray([[[1, 0, -2], [0, 1, 1], [0, 0, 1]]] * 2, jnp.float32)
    np.testing.assert_allclose(np.asarray(apply_geom(x, t)), np.asarray(apply_blit(x, t)),
                               atol=2e-6)


def test_geom_path_rotation_matches_exact_rot90():
    x = _smooth()
    r = jnp.asarray([[[0, -1, 0], [1, 0, 0], [0, 0, 1]]], jnp.float32)
    exact = np.rot90(np.asarray(x[0]), 1)
    np.testing.assert_array_equal(np.asarray(apply_blit(x, r))[0], exact)
    got = np.asarray(apply_geom(x, r))[0]
    # Resampled through the 2x grid: equal up to interpolation error, away from the border.
    assert np.abs(got - exact)[4:-4, 4:-4].max() < 0.02
    assert np.abs(got - exact).max() < 0.15


def test_geom_parameter_distributions():
    n = 4096
    prm = sample_params(KEY, 1.0, AugmentSpec(scale=1), n, 16, 16)
    g = np.asarray(prm["geom"])
    s = -np.log2(g[:, 0, 0])  # G_inv = scale2d_inv(s, s)
    np.testing.assert_allclose(g[:, 1, 1], g[:, 0, 0], rtol=1e-6)
    assert abs(s.std() - 0.2) < 4 * 0.2 / np.sqrt(2 * n)
    prm = sample_params(KEY, 1.0, AugmentSpec(aniso=1), n, 16, 16)
    g = np.asarray(prm["geom"])
    s = np.log2(g[:, 1, 1])  # G_inv = scale2d_inv(s, 1/s)
    np.testing.assert_allclose(g[:, 0, 0] * g[:, 1, 1], 1, rtol=1e-5)
    assert abs(s.std() - 0.2) < 4 * 0.2 / np.sqrt(2 * n)
    prm = sample_params(KEY, 1.0, AugmentSpec(xfrac=1), n, 16, 32)
    t = -np.asarray(prm["geom"][:, :2, 2]) / np.array([32, 16])
    assert np.all(np.abs(t.std(0) - 0.125) < 4 * 0.125 / np.sqrt(2 * n))
    # Rotation: applied twice with p_rot = 1 - sqrt(1 - p) so that P(pre OR post) = p.
    p = 0.5
    prm = sample_params(KEY, p, AugmentSpec(rotate=1), n, 16, 16)
    on = np.asarray(prm["geom_on"]).mean()
    assert abs(on - p) < 4 * np.sqrt(p * (1 - p) / n)
    g = np.asarray(prm["geom"])
    np.testing.assert_allclose(g[:, 0, 0] ** 2 + g[:, 1, 0] ** 2, 1, rtol=1e-5)  # a rotation
    assert np.array_equal(g[~np.asarray(prm["geom_on"])], np.asarray(_eye3(n))[:1].repeat(
        int((~np.asarray(prm["geom_on"])).sum()), 0))  # exactly identity when not fired


# ------------------------------------------------------------------------------------------------
# Color transformations


def _per_image(fn, spec, n=2048, p=1.0):
    x = _images(n, 2, 2)
    y = _aug(x, p, KEY, spec=spec)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def test_brightness_shift_distribution():
    x, y = _per_image(None, AugmentSpec(brightness=1))
    d = y - x
    b = d[:, 0, 0, 0]
    np.testing.assert_allclose(d, np.broadcast_to(b[:, None, None, None], d.shape), atol=1e-6)
    n = len(b)
    assert abs(b.std() - 0.2) < 4 * 0.2 / np.sqrt(2 * n)  # brightness_std = 0.2
    assert abs(b.mean()) < 4 * 0.2 / np.sqrt(n)
    x, y = _per_image(None, AugmentSpec(brightness=1), p=0.5)
    fired = (np.abs(y - x).max(axis=(1, 2, 3)) > 0).mean()
    assert abs(fired - 0.5) < 4 * np.sqrt(0.25 / len(x))


def test_contrast_scale_distribution():
    x, y = _per_image(None, AugmentSpec(contrast=1))
    c = y[:, 0, 0, 0] / x[:, 0, 0, 0]
    np.testing.assert_allclose(y, x * c[:, None, None, None], rtol=1e-4, atol=1e-5)
    assert abs(np.log2(c).std() - 0.5) < 4 * 0.5 / np.sqrt(2 * len(c))  # contrast_std = 0.5


def test_lumaflip_twice_is_identity():
    spec = AugmentSpec(lumaflip=1)
    x = _images(16)
    y = np.asarray(_aug(x, 1.0, KEY, spec=spec))
    xn = np.asarray(x)
    refl = xn - 2 * xn.mean(-1, keepdims=True)  # I - 2 v v^T with v = (1,1,1)/sqrt(3)
    is_refl = [np.allclose(y[i], refl[i], atol=1e-6) for i in range(16)]
    is_same = [np.allclose(y[i], xn[i], atol=1e-6) for i in range(16)]
    assert all(a or b for a, b in zip(is_refl, is_same)) and any(is_refl) and any(is_same)
    y2 = np.asarray(_aug(jnp.asarray(y), 1.0, KEY, spec=spec))
    np.testing.assert_allclose(y2, xn, atol=1e-6)


def test_hue_rotation_identities():
    x = _images(2)
    xn = np.asarray(x)
    full = rotate3d(LUMA, jnp.full((2,), 2 * np.pi))
    np.testing.assert_allclose(np.asarray(full), np.broadcast_to(np.eye(4), (2, 4, 4)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(apply_color(x, full)), xn, atol=1e-6)
    # 120 degrees about the grey axis cyclically permutes the channels (r, g, b) -> (b, r, g).
    third = rotate3d(LUMA, jnp.full((2,), 2 * np.pi / 3))
    np.testing.assert_allclose(np.asarray(apply_color(x, third)), xn[..., [2, 0, 1]], atol=1e-6)
    # Random hue rotations keep luma (RGB mean) and chroma magnitude.
    xs, ys = _per_image(None, AugmentSpec(hue=1), n=256)
    np.testing.assert_allclose(ys.mean(-1), xs.mean(-1), atol=1e-5)
    chroma = lambda a: np.linalg.norm(a - a.mean(-1, keepdims=True), axis=-1)  # noqa: E731
    np.testing.assert_allclose(chroma(ys), chroma(xs), atol=1e-5)
    assert np.abs(ys - xs).max() > 0.1


def test_saturation_identities():
    x = _images(4)
    # saturation_std = 0 -> s = 2**0 = 1: identity even though the op fires.
    y = _aug(x, 1.0, KEY, spec=AugmentSpec(saturation=1, saturation_std=0.0))
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-6)
    vv = jnp.outer(LUMA, LUMA)
    grey = apply_color(x, jnp.broadcast_to(vv + (jnp.eye(4) - vv) * 0.0, (4, 4, 4)))
    xn = np.asarray(x)
    np.testing.assert_allclose(np.asarray(grey), np.repeat(xn.mean(-1, keepdims=True), 3, -1),
                               atol=1e-6)
    # Default strength: chroma scaled by s with log2(s) ~ N(0, 1), luma kept.
    xs, ys = _per_image(None, AugmentSpec(saturation=1))
    np.testing.assert_allclose(ys.mean(-1), xs.mean(-1), atol=1e-5)
    cx, cy = xs - xs.mean(-1, keepdims=True), ys - ys.mean(-1, keepdims=True)
    s = np.sqrt((cy ** 2).sum(axis=(1, 2, 3)) / (cx ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(cy, cx * s[:, None, None, None], rtol=1e-4, atol=1e-5)
    assert abs(np.log2(s).std() - 1.0) < 4 / np.sqrt(2 * len(s))


# ------------------------------------------------------------------------------------------------
# ADA controller


def test_ada_update_step_and_clamp():
    step = 64 * 4 / (500 * 1000)  # batch * interval / (speed_kimg * 1000)
    up = ada_update(jnp.float32(0.3), jnp.float32(0.8), batch_images=64, interval=4)
    down = ada_update(jnp.float32(0.3), jnp.float32(0.1), batch_images=64, interval=4)
    same = ada_update(jnp.float32(0.3), jnp.float32(0.6), batch_images=64, interval=4)
    assert float(up) == pytest.approx(0.3 + step, abs=1e-7)
    assert float(down) == pytest.approx(0.3 - step, abs=1e-7)
    assert float(same) == pytest.approx(0.3, abs=1e-7)
    assert float(ada_update(0.0001, -1.0, batch_images=64, interval=4)) == 0.0
    assert float(ada_update(0.9999, 1.0, batch_images=64, interval=4)) == 1.0
    fast = jax.jit(lambda p, s: ada_update(p, s, batch_images=32, interval=4, target=0.5,
                                           speed_kimg=100))
    assert float(fast(0.5, 0.55)) == pytest.approx(0.5 + 32 * 4 / 1e5, abs=1e-7)
