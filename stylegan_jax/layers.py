"""StyleGAN2 layer math as pure functions on NHWC arrays.

These follow NVlabs stylegan2-ada-pytorch (`torch_utils/ops/*`, `training/networks.py`) so that
converted weights give the same numbers: equalised learning rate (weights stored unscaled, scaled
at run time), `bias_act` with gain and clamp, the [1,3,3,1] FIR resampling of `upfirdn2d`, and the
modulated convolution with demodulation. Weights keep PyTorch layouts ([out, in, kh, kw] convs,
[out, in] dense) so a parameter tree reads like the reference state dict; they are transposed here.

The modulated convolution uses the reference's non-fused form (scale the input by the styles,
run one shared convolution, scale the output by the demodulation coefficients). It is the same
math as a per-sample grouped convolution and maps onto plain convolutions on every backend.

Precision: convolutions and matmuls take an explicit `precision` (a `jax.lax.Precision` or None =
the backend default). On Ampere+ GPUs the default for float32 is TF32 and on TPU one bf16 pass;
the networks pass HIGHEST for their float32 layers unless configured otherwise (the reference
disables TF32). Float16 inputs get the reference's pre-normalisation against overflow.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

LRELU_SLOPE = 0.2
LRELU_GAIN = float(np.sqrt(2.0))
# The FIR taps of StyleGAN2's resampling filter, [1,3,3,1] normalised to sum 1 per axis.
RESAMPLE_TAPS = (1.0, 3.0, 3.0, 1.0)


def act_gain(activation: str) -> float:
    """Default output gain of an activation, as in the reference `bias_act` table."""
    return {'linear': 1.0, 'lrelu': LRELU_GAIN}[activation]


def bias_act(x: jax.Array, bias: jax.Array | None = None, activation: str = 'linear',
             gain: float | None = None, clamp: float | None = None) -> jax.Array:
    """x + bias (along the last axis), activation, times gain, clamp to +-clamp (reference order)."""
    if bias is not None:
        x = x + bias.astype(x.dtype)
    if activation == 'lrelu':
        x = jnp.where(x >= 0, x, x * LRELU_SLOPE)
    elif activation != 'linear':
        raise ValueError(f'unknown activation {activation!r}')
    g = act_gain(activation) if gain is None else gain
    if g != 1:
        x = x * g
    if clamp is not None:
        x = jnp.clip(x, -clamp, clamp)
    return x


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """x / sqrt(mean(x^2) + eps) over the last axis (the mapping network's input normalisation)."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


# --------------------------------------------------------------------------- FIR resampling

def _fir_axis(x: jax.Array, taps: np.ndarray, axis: int, up: int, down: int,
              pad0: int, pad1: int) -> jax.Array:
    """1-D upfirdn along `axis`: zero-insert by `up`, pad, true convolution with taps, keep every `down`-th."""
    if up > 1:
        # x[i] -> position up*i, up-1 zeros after every sample (the last one too), as upfirdn2d does.
        zeros = jnp.zeros_like(x)
        x = jnp.stack([x] + [zeros] * (up - 1), axis=axis + 1)
        shape = list(x.shape)
        shape[axis] = shape[axis] * up
        del shape[axis + 1]
        x = x.reshape(shape)
    if pad0 < 0:
        x = jax.lax.slice_in_dim(x, -pad0, x.shape[axis], axis=axis)
        pad0 = 0
    if pad1 < 0:
        x = jax.lax.slice_in_dim(x, 0, x.shape[axis] + pad1, axis=axis)
        pad1 = 0
    if pad0 or pad1:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (pad0, pad1)
        x = jnp.pad(x, widths)
    k = len(taps)
    n_out = (x.shape[axis] - k) // down + 1
    flipped = taps[::-1]  # convolution, not correlation (the taps are symmetric anyway)
    out = None
    for i, t in enumerate(flipped):
        sl = jax.lax.slice_in_dim(x, i, i + (n_out - 1) * down + 1, stride=down, axis=axis)
        term = sl * jnp.asarray(t, x.dtype)
        out = term if out is None else out + term
    return out


def upfirdn2d(x: jax.Array, taps: Sequence[float] = RESAMPLE_TAPS, up: int = 1, down: int = 1,
              padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0) -> jax.Array:
    """Upsample, FIR filter and downsample an NHWC image with a separable filter.

    `taps` is one axis of the separable filter (normalised here to sum 1); `padding` is
    (x0, x1, y0, y1) like the reference; `gain` scales the 2-D filter (so each axis gets sqrt(gain)).
    """
    t = np.asarray(taps, np.float64)
    t = t / t.sum() * np.sqrt(gain)
    px0, px1, py0, py1 = padding
    x = _fir_axis(x, t, 1, up, down, py0, py1)
    x = _fir_axis(x, t, 2, up, down, px0, px1)
    return x


def upsample2d(x: jax.Array, taps: Sequence[float] = RESAMPLE_TAPS) -> jax.Array:
    """2x upsampling with the FIR filter (reference `upfirdn2d.upsample2d`)."""
    fw = len(taps)
    p0, p1 = (fw + 1) // 2, (fw - 2) // 2
    return upfirdn2d(x, taps, up=2, padding=(p0, p1, p0, p1), gain=4.0)


def downsample2d(x: jax.Array, taps: Sequence[float] = RESAMPLE_TAPS) -> jax.Array:
    """2x downsampling with the FIR filter (reference `upfirdn2d.downsample2d`)."""
    fw = len(taps)
    p0, p1 = (fw - 2 + 1) // 2, (fw - 2) // 2
    return upfirdn2d(x, taps, down=2, padding=(p0, p1, p0, p1))


# --------------------------------------------------------------------------- convolutions

_DN = ('NHWC', 'HWIO', 'NHWC')


def _hwio(weight: jax.Array) -> jax.Array:
    """[out, in, kh, kw] (PyTorch) -> [kh, kw, in, out]."""
    return jnp.transpose(weight, (2, 3, 1, 0))


def conv_transpose_stride2(x: jax.Array, w_hwio: jax.Array, precision: Any = None) -> jax.Array:
    """Full stride-2 transposed convolution (PyTorch conv_transpose2d, no padding), NHWC.

    Output length per axis is 2n + k - 2. Computed as one ordinary convolution producing the four
    output phases as channels, then interleaved (depth-to-space): a quarter of the work of
    convolving a zero-dilated input, and it stays on the fast convolution path of every backend.
    Phase r of an axis is out_r[m] = sum_j w[r + 2j] x[m - j].
    """
    kh, kw, cin, cout = w_hwio.shape
    jh, jw = (kh + 1) // 2, (kw + 1) // 2

    def phase_kernel(w: jax.Array, k: int, j: int, axis: int) -> jax.Array:
        # Correlation taps c[t] = w[r + 2(J-1-t)] (zero where r + 2j runs past the kernel), per phase r.
        out = []
        for r in (0, 1):
            idx = [r + 2 * (j - 1 - t) for t in range(j)]
            parts = [jnp.take(w, i, axis=axis) if i < k else jnp.zeros_like(jnp.take(w, 0, axis=axis))
                     for i in idx]
            out.append(jnp.stack(parts, axis=axis))
        return jnp.stack(out, axis=-1)  # phase as a trailing axis

    ky = phase_kernel(w_hwio, kh, jh, 0)                              # [jh, kw, in, out, ry]
    kyx = phase_kernel(ky, kw, jw, 1)                                 # [jh, jw, in, out, ry, rx]
    n, h, wd, _ = x.shape
    kern = kyx.reshape(jh, jw, cin, cout * 4)
    # Pad explicitly and convolve 'valid': with the padding inside the conv, XLA:CPU computes the
    # kernel gradient of this even-sized kernel on a slow path (~100x slower at 32x32x256).
    x = jnp.pad(x, ((0, 0), (jh - 1, jh - 1), (jw - 1, jw - 1), (0, 0)))
    y = jax.lax.conv_general_dilated(x, kern, (1, 1), [(0, 0), (0, 0)], dimension_numbers=_DN, precision=precision)
    hy, wx = y.shape[1], y.shape[2]                                   # n + J - 1 per axis
    y = y.reshape(n, hy, wx, cout, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, 2 * hy, 2 * wx, cout)
    return y[:, :2 * h + kh - 2, :2 * wd + kw - 2]


def conv2d_resample(x: jax.Array, weight: jax.Array, up: int = 1, down: int = 1, padding: int = 0,
                    taps: Sequence[float] = RESAMPLE_TAPS, precision: Any = None) -> jax.Array:
    """Cross-correlation of NHWC `x` with a [out, in, k, k] weight, with FIR up/down sampling.

    Matches the reference `conv2d_resample` for the cases StyleGAN2 uses: plain conv (padding
    k//2); up=2 (transposed stride-2 conv of the stored weight, then the FIR filter with gain 4);
    down=2 (FIR filter, then stride-2 conv, or for 1x1 kernels FIR-downsample then conv).
    """
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    fw = len(taps)
    w = _hwio(weight).astype(x.dtype)
    conv = functools.partial(jax.lax.conv_general_dilated, dimension_numbers=_DN, precision=precision)
    if up == 1 and down == 1:
        return conv(x, w, (1, 1), [(padding, padding)] * 2)
    if up == 2 and down == 1:
        # Reference padding arithmetic for up > 1.
        p0 = padding + (fw + up - 1) // 2 - (kw - 1)
        p1 = padding + (fw - up) // 2 - (kw - up)
        pt = max(min(-p0, -p1), 0)
        y = conv_transpose_stride2(x, w, precision)
        if pt:
            y = y[:, pt:y.shape[1] - pt, pt:y.shape[2] - pt]
        return upfirdn2d(y, taps, padding=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=float(up * up))
    if down == 2 and up == 1:
        p0 = padding + (fw - down + 1) // 2
        p1 = padding + (fw - down) // 2
        if kh == 1 and kw == 1:
            x = upfirdn2d(x, taps, down=2, padding=(p0, p1, p0, p1))
            return conv(x, w, (1, 1), [(0, 0), (0, 0)])
        x = upfirdn2d(x, taps, padding=(p0, p1, p0, p1))
        return conv(x, w, (2, 2), [(0, 0), (0, 0)])
    raise NotImplementedError(f'conv2d_resample with up={up}, down={down}')


def modulated_conv2d(x: jax.Array, weight: jax.Array, styles: jax.Array, *, demodulate: bool = True,
                     up: int = 1, padding: int = 0, noise: jax.Array | None = None,
                     precision: Any = None, fp32_precision: Any = None) -> jax.Array:
    """StyleGAN2 modulated convolution, NHWC, reference non-fused form; computed in x.dtype.

    weight: [out, in, k, k] float32, unscaled (demodulation makes the scale irrelevant; ToRGB folds
    its 1/sqrt(fan_in) into `styles`). styles: [N, in]. noise: added after demodulation.
    With float16 activations and demodulation, weight and styles are first divided by their max-norms
    (the weight also by sqrt(fan_in)), as the reference does: demodulation undoes the scale, and
    x * styles and the convolution's sums then stay far below float16's 65504.
    `precision`: of the convolution (in x.dtype); `fp32_precision`: of the float32 matmul that
    computes the demodulation coefficients.
    """
    styles = styles.astype(jnp.float32)
    w32 = weight.astype(jnp.float32)
    if x.dtype == jnp.float16 and demodulate:
        fan_in = w32.shape[1] * w32.shape[2] * w32.shape[3]
        w32 = w32 * (1 / np.sqrt(fan_in) / jnp.max(jnp.abs(w32), axis=(1, 2, 3), keepdims=True))
        styles = styles / jnp.max(jnp.abs(styles), axis=1, keepdims=True)
    x = x * styles[:, None, None, :].astype(x.dtype)
    x = conv2d_resample(x, w32, up=up, padding=padding, precision=precision)
    if demodulate:
        # sum over (in, kh, kw) of (w * s)^2 = sum_in s_in^2 * sum_k w[o,in,k]^2
        wsq = jnp.sum(jnp.square(w32), axis=(2, 3))  # [out, in]
        dcoefs = jax.lax.rsqrt(jnp.matmul(jnp.square(styles), wsq.T, precision=fp32_precision) + 1e-8)  # [N, out]
        x = x * dcoefs[:, None, None, :].astype(x.dtype)
    if noise is not None:
        x = x + noise.astype(x.dtype)
    return x


def minibatch_stddev(x: jax.Array, group_size: int | None, num_channels: int = 1) -> jax.Array:
    """Append the minibatch standard deviation as extra channels (reference MinibatchStdLayer), NHWC."""
    n, h, w, c = x.shape
    g = n if group_size is None else min(group_size, n)
    if n % g:
        raise ValueError(f'minibatch stddev: batch {n} is not divisible by the group size {g}')
    f = num_channels
    y = x.astype(jnp.float32).reshape(g, n // g, h, w, f, c // f)
    y = y - jnp.mean(y, axis=0)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)  # [n/g, h, w, f, c/f]
    y = jnp.mean(y, axis=(1, 2, 4))  # [n/g, f]
    y = jnp.tile(y, (g, 1))  # sample i of the batch uses group column i % (n/g)
    y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, f)).astype(x.dtype)
    return jnp.concatenate([x, y], axis=-1)
