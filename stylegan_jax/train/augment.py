"""Differentiable adaptive augmentation (ADA) of StyleGAN2-ADA, in pure JAX.

Follows the semantics and defaults of NVlabs stylegan2-ada-pytorch ``training/augment.py``
(``AugmentPipe``) for the pixel-blitting, general-geometric and color groups ('bgc'):

* Every op fires per image with probability ``p * multiplier`` (independent draws).
* Geometric ops compose an *inverse* 3x3 homogeneous matrix per image, ``G_inv @ pixel_out ->
  pixel_in``, in pixel units centred on the image centre (x to the right, y down), in the order
  x-flip, 90-degree rotation, integer translation, isotropic scale, pre-rotation, anisotropic
  scale, post-rotation, fractional translation.  The arbitrary rotation fires twice (before and
  after the anisotropic scaling), each with probability ``1 - sqrt(1 - p)`` so that
  ``P(pre or post) = p``.
* Color ops compose a 4x4 matrix per image acting on homogeneous RGB (images in [-1, 1]) in the
  order brightness, contrast, luma flip, hue rotation, saturation; the luma axis is
  ``(1, 1, 1, 0) / sqrt(3)``.

Resampling (documented differences from the reference):

* Images on which no general geometric op fired (only flips, 90-degree rotations and integer
  translations, or nothing) are resampled by bilinear sampling *at exactly integer positions*
  of the reflect-extended image, i.e. a pure index permutation: the result is bit-exact, and
  ``p = 0`` returns the input unchanged.
* Images on which a general op fired go through the reference's anti-aliased path: reflect
  padding, 2x upsampling with the orthogonal ``sym6`` wavelet low-pass filter, bilinear sampling
  on the 2x grid, filtering with the same filter and 2x decimation.  For the identity transform
  this reconstructs the input to float rounding (the filter is orthogonal).  The reference pads
  by a batch-dependent margin (at most one image size, zeros beyond); static shapes under
  ``jit`` forbid that, so here the image is padded by a fixed 8 pixels and sample positions that
  fall outside that band are mirrored back into the image (infinite reflection).  Inside the
  band the two agree; outside, the difference is the small asymmetry of the ``sym6`` filter.
* Which of the two paths an image takes is chosen per image with ``jnp.where``; the costly path
  is skipped with ``lax.cond`` when no image in the batch needs it.

Everything is a pure function of ``(images, p, key)``: ``p`` may be a traced scalar, and
``augment`` works under ``jit``, ``vmap``, ``pmap`` and ``grad`` (it is affine in the images).
The spec must be static: ``jax.jit(augment, static_argnames='spec')``.

Not implemented: the reference's image-space filtering ('f'), additive noise ('n') and cutout
('c') groups.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "AugmentSpec",
    "augment",
    "ada_update",
    "sample_params",
    "apply_blit",
    "apply_geom",
    "apply_color",
    "rotate3d",
    "SYM6",
]

# Low-pass decomposition filter of the Symlet-6 wavelet (the reference's 'sym6' coefficients,
# standard values, e.g. PyWavelets `pywt.Wavelet('sym6').dec_lo` reversed). Sum = sqrt(2),
# sum of squares = 1.
SYM6 = np.array([
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
])

_HI = lax.Precision.HIGHEST  # tiny matrices and filters: never let TF32/bf16 passes round them
_N_UNIFORM, _N_NORMAL = 24, 12  # rows drawn per call by sample_params (21 / 7 used by the full spec)
_PAD = 8  # fixed reflect padding (pixels) before the 2x upsampling of the geometric path
_PRESETS = {
    "blit": ("xflip", "rotate90", "xint"),
    "geom": ("scale", "rotate", "aniso", "xfrac"),
    "color": ("brightness", "contrast", "lumaflip", "hue", "saturation"),
}
_PRESETS["bg"] = _PRESETS["blit"] + _PRESETS["geom"]
_PRESETS["bgc"] = _PRESETS["bg"] + _PRESETS["color"]


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Which augmentations are on (probability multipliers) and their strengths.

    Defaults equal the reference ``AugmentPipe``: every multiplier 0 (all off), strengths as in
    the paper. Use :meth:`preset` for the reference's ``--augpipe`` presets. Frozen and hashable,
    so it can be a static argument of ``jax.jit``.
    """

    # Pixel blitting.
    xflip: float = 0.0  # probability multiplier for x-flip
    rotate90: float = 0.0  # probability multiplier for 90-degree rotations
    xint: float = 0.0  # probability multiplier for integer translation
    xint_max: float = 0.125  # range of integer translation, relative to image size
    # General geometric transformations.
    scale: float = 0.0  # probability multiplier for isotropic scaling
    rotate: float = 0.0  # probability multiplier for arbitrary rotation
    aniso: float = 0.0  # probability multiplier for anisotropic scaling
    xfrac: float = 0.0  # probability multiplier for fractional translation
    scale_std: float = 0.2  # log2 standard deviation of isotropic scaling
    rotate_max: float = 1.0  # range of arbitrary rotation, 1 = full circle
    aniso_std: float = 0.2  # log2 standard deviation of anisotropic scaling
    xfrac_std: float = 0.125  # standard deviation of fractional translation, relative to size
    # Color transformations.
    brightness: float = 0.0  # probability multiplier for brightness
    contrast: float = 0.0  # probability multiplier for contrast
    lumaflip: float = 0.0  # probability multiplier for luma flip
    hue: float = 0.0  # probability multiplier for hue rotation
    saturation: float = 0.0  # probability multiplier for saturation
    brightness_std: float = 0.2  # standard deviation of brightness
    contrast_std: float = 0.5  # log2 standard deviation of contrast
    hue_max: float = 1.0  # range of hue rotation, 1 = full circle
    saturation_std: float = 1.0  # log2 standard deviation of saturation

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"AugmentSpec.{f.name} must be a finite number >= 0, got {v!r}")

    @classmethod
    def preset(cls, name: str) -> "AugmentSpec":
        """The reference's ``--augpipe`` presets: 'blit', 'geom', 'color', 'bg', 'bgc'."""
        if name not in _PRESETS:
            raise ValueError(f"unknown augment preset {name!r}; choose one of {sorted(_PRESETS)}")
        return cls(**{k: 1.0 for k in _PRESETS[name]})

    @property
    def has_blit(self) -> bool:
        """True if any pixel-blitting op is on."""
        return self.xflip > 0 or self.rotate90 > 0 or self.xint > 0

    @property
    def has_geom(self) -> bool:
        """True if any general geometric op is on."""
        return self.scale > 0 or self.rotate > 0 or self.aniso > 0 or self.xfrac > 0

    @property
    def has_color(self) -> bool:
        """True if any color op is on."""
        return (self.brightness > 0 or self.contrast > 0 or self.lumaflip > 0 or self.hue > 0
                or self.saturation > 0)


# ------------------------------------------------------------------------------------------------
# Batched matrix builders ([N] arrays -> [N, k, k]).

def _mat(rows: list[list]) -> jax.Array:
    """Stack a nested list of [N] arrays / Python numbers into an [N, R, C] array."""
    ref = next(e for row in rows for e in row if isinstance(e, jax.Array))
    return jnp.stack([jnp.stack([jnp.broadcast_to(jnp.asarray(e, ref.dtype), ref.shape)
                                 for e in row], -1) for row in rows], -2)


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.einsum("...ij,...jk->...ik", a, b, precision=_HI)


def _translate2d(tx: jax.Array, ty: jax.Array) -> jax.Array:
    return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def _scale2d(sx: jax.Array, sy: jax.Array) -> jax.Array:
    return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def _rotate2d(cos: jax.Array, sin: jax.Array) -> jax.Array:
    return _mat([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])


def _luma_axis() -> jax.Array:
    return jnp.asarray([1.0, 1.0, 1.0, 0.0], jnp.float32) / np.sqrt(3.0)


def rotate3d(v: jax.Array, theta: jax.Array) -> jax.Array:
    """4x4 homogeneous rotation by ``theta`` [N] around the unit axis ``v`` (first 3 entries).

    Rodrigues' formula ``cos*I + sin*[v]_x + (1 - cos) v v^T``; returns [N, 4, 4].
    """
    vx, vy, vz = v[0], v[1], v[2]
    s, c = jnp.sin(theta), jnp.cos(theta)
    cc = 1 - c
    return _mat([
        [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
        [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
        [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
        [0, 0, 0, 1],
    ])


# ------------------------------------------------------------------------------------------------
# Parameter sampling.

def sample_params(key: jax.Array, p: jax.Array, spec: AugmentSpec, batch: int, height: int,
                  width: int, channels: int = 3) -> dict[str, jax.Array]:
    """Draw the per-image transforms of one ``augment`` call.

    Returns a dict with ``blit`` [N, 3, 3] (flip/rot90/integer translation; entries are exact
    small integers), ``geom`` [N, 3, 3] (general ops; exactly identity where none fired),
    ``geom_on`` [N] bool (some general op fired) and ``color`` [N, 4, 4]. The matrices are
    inverse maps (output pixel -> input pixel) in centred pixel units, like the reference's
    ``G_inv``; the full geometric map is ``blit @ geom``.
    """
    n = batch
    p = jnp.asarray(p, jnp.float32)
    # Two bulk draws instead of one small draw per op: every jax.random call inlines its own
    # threefry hash, and ~30 of them made this function the slowest part of compiling augment.
    k_uni, k_nrm = jax.random.split(key)
    u_rows = iter(jax.random.uniform(k_uni, (_N_UNIFORM, n)))
    n_rows = iter(jax.random.normal(k_nrm, (_N_NORMAL, n)))

    def uni(shape=(n,)):
        return next(u_rows) if len(shape) == 1 else jnp.stack([next(u_rows) for _ in range(shape[1])], -1)

    def nrm(shape=(n,)):
        return next(n_rows) if len(shape) == 1 else jnp.stack([next(n_rows) for _ in range(shape[1])], -1)

    gate = lambda mult: uni() < mult * p  # noqa: E731  (independent Bernoulli(p*mult) per image)
    eye3 = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (n, 3, 3))
    eye4 = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), (n, 4, 4))

    # Pixel blitting: built from exact integers (no cos(pi/2) ~ 6e-17 rounding) so that the blit
    # path is an exact index permutation.
    blit = eye3
    if spec.xflip > 0:
        i = jnp.where(gate(spec.xflip), jnp.floor(uni() * 2), 0.0)
        blit = _mm(blit, _scale2d(1 - 2 * i, jnp.ones_like(i)))
    if spec.rotate90 > 0:
        i = jnp.where(gate(spec.rotate90), jnp.floor(uni() * 4), 0.0).astype(jnp.int32)
        # Reference: rotate2d_inv(-pi/2 * i) == rotate2d(pi/2 * i); cos/sin of multiples of pi/2.
        cos = jnp.asarray([1.0, 0.0, -1.0, 0.0])[i]
        sin = jnp.asarray([0.0, 1.0, 0.0, -1.0])[i]
        blit = _mm(blit, _rotate2d(cos, sin))
    if spec.xint > 0:
        t = (uni((n, 2)) * 2 - 1) * spec.xint_max
        t = jnp.where(gate(spec.xint)[:, None], t, 0.0)
        blit = _mm(blit, _translate2d(-jnp.round(t[:, 0] * width), -jnp.round(t[:, 1] * height)))

    # General geometric transformations.
    geom, geom_on = eye3, jnp.zeros((n,), bool)
    if spec.scale > 0:
        on = gate(spec.scale)
        s = jnp.where(on, jnp.exp2(nrm() * spec.scale_std), 1.0)
        geom, geom_on = _mm(geom, _scale2d(1 / s, 1 / s)), geom_on | on
    p_rot = 1 - jnp.sqrt(jnp.clip(1 - spec.rotate * p, 0.0, 1.0))  # P(pre OR post) = p * rotate

    def rotate(geom: jax.Array, geom_on: jax.Array) -> tuple[jax.Array, jax.Array]:
        # Arbitrary rotation, applied twice (before and after the anisotropic scaling) like the reference.
        on = uni() < p_rot
        theta = jnp.where(on, (uni() * 2 - 1) * np.pi * spec.rotate_max, 0.0)
        return _mm(geom, _rotate2d(jnp.cos(theta), jnp.sin(theta))), geom_on | on

    if spec.rotate > 0:
        geom, geom_on = rotate(geom, geom_on)
    if spec.aniso > 0:
        on = gate(spec.aniso)
        s = jnp.where(on, jnp.exp2(nrm() * spec.aniso_std), 1.0)
        geom, geom_on = _mm(geom, _scale2d(1 / s, s)), geom_on | on
    if spec.rotate > 0:
        geom, geom_on = rotate(geom, geom_on)
    if spec.xfrac > 0:
        on = gate(spec.xfrac)
        t = jnp.where(on[:, None], nrm((n, 2)) * spec.xfrac_std, 0.0)
        geom, geom_on = _mm(geom, _translate2d(-t[:, 0] * width, -t[:, 1] * height)), geom_on | on

    # Color transformations (C @ [r, g, b, 1]).
    color = eye4
    v = _luma_axis()
    vv = jnp.outer(v, v)
    if spec.brightness > 0:
        b = jnp.where(gate(spec.brightness), nrm() * spec.brightness_std, 0.0)
        color = _mm(_mat([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]]), color)
    if spec.contrast > 0:
        c = jnp.where(gate(spec.contrast), jnp.exp2(nrm() * spec.contrast_std), 1.0)
        color = _mm(_mat([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]]), color)
    if spec.lumaflip > 0:
        i = jnp.where(gate(spec.lumaflip), jnp.floor(uni() * 2), 0.0)
        color = _mm(jnp.eye(4) - 2 * vv * i[:, None, None], color)  # Householder reflection
    if spec.hue > 0 and channels > 1:
        theta = jnp.where(gate(spec.hue), (uni() * 2 - 1) * np.pi * spec.hue_max, 0.0)
        color = _mm(rotate3d(v, theta), color)
    if spec.saturation > 0 and channels > 1:
        s = jnp.where(gate(spec.saturation), jnp.exp2(nrm() * spec.saturation_std), 1.0)
        color = _mm(vv + (jnp.eye(4) - vv) * s[:, None, None], color)

    return {"blit": blit, "geom": geom, "geom_on": geom_on, "color": color}


# ------------------------------------------------------------------------------------------------
# Resampling.

def _reflect_index(i: jax.Array, size: int) -> jax.Array:
    """Mirror integer indices into [0, size) without repeating the edge (torch 'reflect')."""
    if size == 1:
        return jnp.zeros_like(i)
    period = 2 * (size - 1)
    r = jnp.mod(i, period)
    return jnp.where(r > size - 1, period - r, r)


def _reflect_coord(c: jax.Array, size: int) -> jax.Array:
    """Mirror continuous pixel coordinates into [0, size - 1] (reflection about pixel centres)."""
    period = 2.0 * (size - 1)
    r = jnp.mod(c, period)
    return jnp.where(r > size - 1, period - r, r)


def _gather_bilinear(img: jax.Array, cy: jax.Array, cx: jax.Array,
                     index: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
                     ) -> jax.Array:
    """Bilinear sample one HWC image at float pixel coords; ``index`` maps int (y, x) in range.

    Written so that integer coordinates give the exact pixel: (1 - 0) * a + 0 * b == a.
    """
    y0, x0 = jnp.floor(cy), jnp.floor(cx)
    wy, wx = (cy - y0)[..., None], (cx - x0)[..., None]
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)

    def at(y, x):
        iy, ix = index(y, x)
        return img[iy, ix]

    top = (1 - wx) * at(y0, x0) + wx * at(y0, x0 + 1)
    bot = (1 - wx) * at(y0 + 1, x0) + wx * at(y0 + 1, x0 + 1)
    return (1 - wy) * top + wy * bot


def _out_to_in(g: jax.Array, ys: jax.Array, xs: jax.Array, height: int, width: int
               ) -> tuple[jax.Array, jax.Array]:
    """Map output pixel coords (y, x grids) through one inverse matrix to input pixel coords."""
    cy, cx = (height - 1) / 2, (width - 1) / 2
    xc, yc = xs - cx, ys - cy
    # Elementwise (not a matmul) so no backend lowers it to reduced precision.
    xi = g[0, 0] * xc + g[0, 1] * yc + g[0, 2]
    yi = g[1, 0] * xc + g[1, 1] * yc + g[1, 2]
    return yi + cy, xi + cx


def apply_blit(images: jax.Array, g_inv: jax.Array) -> jax.Array:
    """Resample NHWC images by ``g_inv`` [N, 3, 3] with bilinear sampling of the reflect-extended
    image (reflection without edge repeat, periodic for any offset), no anti-aliasing.

    For integer maps (flips, 90-degree rotations, integer translations) every sample lands on a
    pixel centre and the result is an exact permutation of input pixels.
    """
    n, h, w, _ = images.shape
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")
    idx = lambda y, x: (_reflect_index(y, h), _reflect_index(x, w))  # noqa: E731

    def one(img, g):
        yi, xi = _out_to_in(g, ys, xs, h, w)
        return _gather_bilinear(img, yi, xi, idx)

    return jax.vmap(one)(images, g_inv.astype(jnp.float32))


def _pad_axis(x: jax.Array, axis: int, lo: int, hi: int) -> jax.Array:
    """Zero-pad (negative = crop) one axis."""
    cfg = [(0, 0, 0)] * x.ndim
    cfg[axis] = (lo, hi, 0)
    return lax.pad(x, jnp.zeros((), x.dtype), cfg)


# The two 1-D FIR resamplers below are adjoints of each other and each is the other's VJP. Both
# are written in polyphase form with shifted slices: plain multiply-adds that XLA fuses (far
# faster on CPU than a grouped dilated convolution, and full fp32 on every backend). Letting
# autodiff transpose the slices instead made the backward pass ~15x slower on CPU.

@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _corr_dec(z: jax.Array, taps: tuple, axis: int, offset: int, out_len: int) -> jax.Array:
    """Correlate and decimate by 2: ``D[m] = sum_j taps[j] z[2m + j - offset]``, z zero outside."""
    k, n = len(taps), z.shape[axis]
    total = 2 * (out_len + (k + 1) // 2)
    zp = _pad_axis(z, axis, offset, total - n - offset)
    zz = zp.reshape(zp.shape[:axis] + (total // 2, 2) + zp.shape[axis + 1:])
    phase = [lax.index_in_dim(zz, i, axis + 1, keepdims=False) for i in range(2)]
    return sum(taps[j] * lax.slice_in_dim(phase[j % 2], j // 2, j // 2 + out_len, axis=axis)
               for j in range(k))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _up_conv(x: jax.Array, taps: tuple, axis: int, shift: int, out_len: int) -> jax.Array:
    """Zero-insert by 2 and convolve: ``Y[k] = sum_i x[i] taps[k + shift - 2i]``, x zero outside."""
    k, n = len(taps), x.shape[axis]
    r = (out_len + 1) // 2
    phases = []
    for ph in range(2):  # output sample 2r + ph only sees taps of parity (ph + shift)
        d = {j: (ph + shift - j) // 2 for j in range(k) if (j - ph - shift) % 2 == 0}
        lo, hi = max(0, -min(d.values())), max(0, r + max(d.values()) - n)
        xp = _pad_axis(x, axis, lo, hi)
        phases.append(sum(taps[j] * lax.slice_in_dim(xp, dj + lo, dj + lo + r, axis=axis)
                          for j, dj in d.items()))
    y = jnp.stack(phases, axis + 1).reshape(x.shape[:axis] + (2 * r,) + x.shape[axis + 1:])
    return lax.slice_in_dim(y, 0, out_len, axis=axis)


def _corr_dec_fwd(z, taps, axis, offset, out_len):
    return _corr_dec(z, taps, axis, offset, out_len), z.shape[axis]


def _corr_dec_bwd(taps, axis, offset, out_len, n, g):
    return (_up_conv(g, taps, axis, offset, n),)


def _up_conv_fwd(x, taps, axis, shift, out_len):
    return _up_conv(x, taps, axis, shift, out_len), x.shape[axis]


def _up_conv_bwd(taps, axis, shift, out_len, n, g):
    return (_corr_dec(g, taps, axis, shift, n),)


_corr_dec.defvjp(_corr_dec_fwd, _corr_dec_bwd)
_up_conv.defvjp(_up_conv_fwd, _up_conv_bwd)


def _up2(x: jax.Array, f: tuple) -> jax.Array:
    """2x upsampling of NHWC as upfirdn2d ``upsample2d``: zero insertion, true convolution with
    ``f`` centred by padding (k//2, k//2 - 1), gain 2 per axis: ``U[k] = 2 sum_i x[i] f[k+5-2i]``
    for the 12-tap sym6."""
    shift = len(f) // 2 - 1
    g = tuple(2.0 * t for t in f)
    x = _up_conv(x, g, 1, shift, 2 * x.shape[1])
    return _up_conv(x, g, 2, shift, 2 * x.shape[2])


def _down2(z: jax.Array, f: tuple) -> jax.Array:
    """Valid correlation with ``f`` and 2x decimation on both spatial axes of NHWC:
    ``D[m] = sum_j f[j] z[2m + j]`` (upfirdn2d ``downsample2d`` with ``flip_filter=True``)."""
    k = len(f)
    z = _corr_dec(z, f, 1, 0, (z.shape[1] - k) // 2 + 1)
    return _corr_dec(z, f, 2, 0, (z.shape[2] - k) // 2 + 1)


def apply_geom(images: jax.Array, g_inv: jax.Array) -> jax.Array:
    """Resample NHWC images by ``g_inv`` [N, 3, 3] through the anti-aliased 2x path.

    Pad by reflection, upsample 2x with the sym6 low-pass filter (upfirdn2d ``upsample2d``
    convention: true convolution, gain 2 per axis), bilinear-sample a 2x grid covering the output
    plus 3 pixels each side, filter with sym6 (correlation) and decimate by 2. With the identity
    map this reconstructs the input up to float rounding (sym6 is an orthogonal wavelet).
    """
    n, h, w, _ = images.shape
    f = tuple(float(t) for t in SYM6 / SYM6.sum())  # unit DC gain like upfirdn2d.setup_filter
    k = len(f)  # 12 taps; the reference's Hz_pad = k // 4 = 3
    hz_pad = k // 4
    # Reflect-pad by _PAD pixels (index based, so it works for images smaller than the pad).
    iy = _reflect_index(jnp.arange(-_PAD, h + _PAD), h)
    ix = _reflect_index(jnp.arange(-_PAD, w + _PAD), w)
    x = images[:, iy][:, :, ix]
    # 2x upsampling: U[k'] = 2 * sum_i x[i] f[k' + 5 - 2i]; U[k'] sits at padded coordinate
    # (k' - 0.5) / 2.
    x = _up2(x, f)
    hu, wu = 2 * (h + 2 * _PAD), 2 * (w + 2 * _PAD)

    # The 2x sampling grid: z[q] sits at output coordinate (q + 0.5) / 2 - hz_pad, so that
    # decimating with D[m] = sum_j f[j] z[2m + j] yields output pixel m.
    nzy, nzx = 2 * h + k - 2, 2 * w + k - 2
    qy, qx = jnp.meshgrid(jnp.arange(nzy, dtype=jnp.float32), jnp.arange(nzx, dtype=jnp.float32),
                          indexing="ij")
    oy, ox = (qy + 0.5) / 2 - hz_pad, (qx + 0.5) / 2 - hz_pad

    def to_up(c, size):
        # Keep coordinates for which U (and the bilinear neighbour) is unaffected by the zero
        # border of the FIR; mirror the rest into the image (the reference zero-fills beyond its
        # batch-dependent margin instead).
        lo, hi = 2.75 - _PAD, size + _PAD - 4.25
        c = jnp.where((c >= lo) & (c <= hi), c, _reflect_coord(c, size))
        return 2 * (c + _PAD) + 0.5

    idx = lambda y, x: (jnp.clip(y, 0, hu - 1), jnp.clip(x, 0, wu - 1))  # noqa: E731

    # sym6 is not linear-phase: its centroid (5.10) is 0.40 taps before the nominal centre (5.5),
    # so the 2x upsampling shifts content by +d and the decimation by -d (d ~ 0.2 px). They cancel
    # for translations but not once the map rotates or flips axes (the reference leaves up to
    # ~0.4 px of misalignment there); conjugating the map with a translation by d removes the
    # low-frequency part of that shift.
    d = ((k - 1) / 2 - float(np.dot(np.arange(k), f))) / 2

    def one(img, g):
        yi, xi = _out_to_in(g, oy + d, ox + d, h, w)
        return _gather_bilinear(img, to_up(yi - d, h), to_up(xi - d, w), idx)

    z = jax.vmap(one)(x, g_inv.astype(jnp.float32))
    return _down2(z, f)


def apply_color(images: jax.Array, color: jax.Array) -> jax.Array:
    """Apply per-image 4x4 homogeneous color matrices [N, 4, 4] to NHWC RGB (or L) images.

    Written as elementwise multiply-adds (not a matmul) so the identity matrix is exact on every
    backend. One-channel images use the mean of the RGB rows, like the reference.
    """
    c = color.astype(images.dtype)[:, None, None]  # [N, 1, 1, 4, 4]
    ch = images.shape[-1]
    if ch == 3:
        r, g, b = images[..., 0], images[..., 1], images[..., 2]
        outs = [c[..., i, 0] * r + c[..., i, 1] * g + c[..., i, 2] * b + c[..., i, 3]
                for i in range(3)]
        return jnp.stack(outs, -1)
    if ch == 1:
        m = jnp.mean(c[..., :3, :], axis=-2)  # [N, 1, 1, 4]
        return images * jnp.sum(m[..., :3], -1, keepdims=True) + m[..., 3:]
    raise ValueError(f"color augmentation needs RGB (3) or L (1) channels, got {ch}")


# ------------------------------------------------------------------------------------------------
# Public entry points.

def augment(images: jax.Array, p: jax.Array, key: jax.Array,
            spec: AugmentSpec = AugmentSpec.preset("bgc")) -> jax.Array:
    """Augment a batch of NHWC images (float, [-1, 1]) with overall probability ``p``.

    Each enabled op fires independently per image with probability ``p * multiplier``; with
    ``p = 0`` the output equals the input exactly. ``p`` may be traced; ``spec`` must be static.
    Differentiable w.r.t. ``images`` (the map is affine in them).
    """
    if images.ndim != 4:
        raise ValueError(f"augment expects NHWC images, got shape {images.shape}")
    n, h, w, c = images.shape
    if (spec.has_blit or spec.has_geom) and min(h, w) < 2:
        raise ValueError(f"geometric augmentation needs images of at least 2x2, got {h}x{w}")
    if spec.has_color and c not in (1, 3):
        raise ValueError(f"color augmentation needs RGB (3) or L (1) channels, got {c}")
    dtype = images.dtype
    params = sample_params(key, p, spec, n, h, w, c)
    x = images
    if spec.has_blit or spec.has_geom:
        x_blit = apply_blit(x, params["blit"])
        if spec.has_geom:
            g = _mm(params["blit"], params["geom"])
            on = params["geom_on"]
            # Skip the costly anti-aliased path for batches where no general op fired
            # (always the case at p = 0); under vmap this becomes a select of both branches.
            x_geom = lax.cond(jnp.any(on), lambda: apply_geom(x, g).astype(x.dtype),
                              lambda: x_blit)
            x = jnp.where(on[:, None, None, None], x_geom, x_blit)
        else:
            x = x_blit
    if spec.has_color:
        x = apply_color(x, params["color"])
    return x.astype(dtype)


def ada_update(p: jax.Array, real_sign_mean: jax.Array, *, batch_images: int, interval: int,
               target: float = 0.6, speed_kimg: float = 500.0) -> jax.Array:
    """One ADA step on the augmentation probability.

    ``real_sign_mean`` is E[sign(D(real))] accumulated over the last ``interval`` steps of
    ``batch_images`` images each. As in the reference, ``p`` moves by
    ``sign(real_sign_mean - target) * batch_images * interval / (speed_kimg * 1000)``, so it can
    traverse 0 -> 1 in ``speed_kimg`` thousand images. The reference clamps only at 0; here the
    result is clamped to [0, 1] (p is a probability multiplier, values above 1 saturate anyway
    for the default multipliers of 1).
    """
    adjust = jnp.sign(jnp.asarray(real_sign_mean, jnp.float32) - target) * (
        batch_images * interval / (speed_kimg * 1000.0))
    return jnp.clip(jnp.asarray(p, jnp.float32) + adjust, 0.0, 1.0)
