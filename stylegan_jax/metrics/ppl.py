"""Perceptual path length (Karras et al. 2019; the StyleGAN2 paper reports `ppl2_wend`).

The protocol of the reference metric (stylegan2-ada-pytorch metrics/perceptual_path_length.py):
  * pairs z0, z1 ~ N(0, I); t = 0 ('end' sampling) or t ~ U(0, 1) ('full');
  * space 'w': w0, w1 = mapping(z0), mapping(z1) (truncation 1), latents lerp(w0, w1, t) and
    lerp(w0, w1, t + eps); space 'z': slerp of z0, z1 at t and t + eps, then mapped;
  * both images of a pair get the same random noise (the reference redraws the noise buffers per
    batch; here each pair has its own draw);
  * optional centre crop (rows 3/8..7/8, columns 2/8..6/8 of the image: the face), images larger
    than 256 px area-downsampled to 256;
  * d = distance(img0, img1) / eps^2 with eps = 1e-4; the PPL is the mean of d over the samples
    between the 1st and 99th percentiles.
The reference distance is VGG16 LPIPS (needs the reference's vgg16.pt); the Inception and pixel
distances of `perceptual.distance` are accepted too, and change the number: always report which.

Metric names (the reference's): ppl_zfull, ppl_wfull, ppl_zend, ppl_wend (crop) and ppl2_wend
(no crop: the StyleGAN2 paper's Table 1 value).
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

EPSILON = 1e-4
PPL_METRICS = {  # name -> (space, sampling, crop)
    'ppl_zfull': ('z', 'full', True), 'ppl_wfull': ('w', 'full', True), 'ppl_zend': ('z', 'end', True),
    'ppl_wend': ('w', 'end', True), 'ppl2_wend': ('w', 'end', False),
}
MAX_SIZE = 256


def slerp(a: Any, b: Any, t: Any) -> Any:
    """Spherical interpolation of batches of vectors (unit-normalised, as the reference does)."""
    import jax.numpy as jnp

    a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
    b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    d = jnp.sum(a * b, axis=-1, keepdims=True)
    p = t * jnp.arccos(jnp.clip(d, -1.0, 1.0))
    c = b - d * a
    c = c / jnp.linalg.norm(c, axis=-1, keepdims=True)
    out = a * jnp.cos(p) + c * jnp.sin(p)
    return out / jnp.linalg.norm(out, axis=-1, keepdims=True)


def crop_and_shrink(img: Any, crop: bool) -> Any:
    """The reference's face crop (NHWC) and box downsampling to 256 px."""
    if crop:
        c = img.shape[1] // 8
        img = img[:, c * 3:c * 7, c * 2:c * 6]
    f = img.shape[1] // MAX_SIZE
    if f > 1:
        n, h, w, ch = img.shape
        img = img.reshape(n, h // f, f, w // f, f, ch).mean(axis=(2, 4))
    return img


def pair_distances(gen: Any, variables: dict, distance: Any, z0: Any, z1: Any, t: Any, c: Any, noise_key: Any,
                   space: str = 'w', crop: bool = True, epsilon: float = EPSILON) -> Any:
    """d = distance(G(at t), G(at t + eps)) / eps^2 for each pair (z0[i], z1[i]) at t[i] [N, 1]."""
    import jax.numpy as jnp

    from stylegan_jax import networks

    cc = None if c is None else jnp.concatenate([c, c])

    def mapped(z):
        return gen.apply(variables, z, cc, method=networks.Generator.map)

    if space == 'w':
        w0, w1 = jnp.split(mapped(jnp.concatenate([z0, z1])), 2)
        ta = t[:, :, None]
        wt0, wt1 = w0 + (w1 - w0) * ta, w0 + (w1 - w0) * (ta + epsilon)
    else:
        wt0, wt1 = jnp.split(mapped(jnp.concatenate([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)])), 2)

    def synth(ws):  # the same noise key for both halves: each pair shares its noise
        return gen.apply(variables, ws, 'random', method=networks.Generator.synthesize, rngs={'noise': noise_key})

    img0, img1 = crop_and_shrink(synth(wt0), crop), crop_and_shrink(synth(wt1), crop)
    return distance(img0, img1) / epsilon ** 2


@dataclasses.dataclass
class PPLResult:
    value: float
    distances: np.ndarray   # every sample's d (before the percentile filter)
    distance: str           # which image distance was used


def compute_ppl(cfg: Any, g_variables: dict, distance: Any, num_samples: int = 50000, space: str = 'w',
                sampling: str = 'end', crop: bool = True, epsilon: float = EPSILON, batch: int = 16,
                seed: int = 0, progress: bool = True) -> PPLResult:
    """PPL of a generator (`cfg`: NetworkConfig, `g_variables`: its G_ema variables) with an image distance."""
    import jax
    import jax.numpy as jnp
    from tqdm import tqdm

    from stylegan_jax import networks
    from stylegan_jax.metrics.inception import MetricsError

    if space not in ('z', 'w') or sampling not in ('full', 'end'):
        raise MetricsError(f'PPL space must be z or w and sampling full or end, got {space!r}, {sampling!r}')
    if num_samples < 2:
        raise MetricsError(f'PPL needs at least 2 samples, got {num_samples}')
    gen = networks.Generator(cfg)

    @jax.jit
    def batch_distances(variables, key):
        kt, kz, kc, kn = jax.random.split(key, 4)
        t = jax.random.uniform(kt, (batch, 1)) * (1.0 if sampling == 'full' else 0.0)
        z0, z1 = jnp.split(jax.random.normal(kz, (2 * batch, cfg.z_dim)), 2)
        c = (jax.nn.one_hot(jax.random.randint(kc, (batch,), 0, cfg.c_dim), cfg.c_dim) if cfg.c_dim else None)
        return pair_distances(gen, variables, distance, z0, z1, t, c, kn, space, crop, epsilon)

    key = jax.random.PRNGKey(seed)
    out = []
    with tqdm(total=num_samples, desc=f'ppl ({distance.name})', unit='pair', disable=not progress,
              file=sys.stderr) as bar:
        done = 0
        while done < num_samples:
            key, sub = jax.random.split(key)
            d = np.asarray(batch_distances(g_variables, sub), np.float64)[:num_samples - done]
            out.append(d)
            done += len(d)
            bar.update(len(d))
    dist = np.concatenate(out)
    return PPLResult(filtered_mean(dist), dist, distance.name)


def filtered_mean(dist: np.ndarray) -> float:
    """Mean of the values between the 1st ('lower') and 99th ('higher') percentiles, as the reference."""
    lo = np.percentile(dist, 1, method='lower')
    hi = np.percentile(dist, 99, method='higher')
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


def compute_named(name: str, cfg: Any, g_variables: dict, distance: Any, **kwargs: Any) -> PPLResult:
    """One of PPL_METRICS by name (e.g. 'ppl_wend')."""
    space, sampling, crop = PPL_METRICS[name]
    return compute_ppl(cfg, g_variables, distance, space=space, sampling=sampling, crop=crop, **kwargs)
