"""Projection: find the latent whose image matches a target (the StyleGAN2 projector's method, in JAX).

The method of the reference projector (StyleGAN2 paper, Sec. 5; stylegan2-ada-pytorch projector.py),
with its defaults:
  * start at w_avg; w_std = RMS distance of 10,000 mapped samples (z from RandomState(123)) to it;
  * optimise w (one latent broadcast to every layer, `space='w'`; or one per layer, `space='w+'`)
    together with every constant noise map, with Adam (betas 0.9, 0.999), lr 0.1;
  * learning rate ramped up over the first 5% of the steps and down (cosine) over the last 25%;
  * latent noise of std w_std * 0.05 * max(0, 1 - t / 0.75)^2 added to w at step fraction t;
  * loss = distance(G(w + noise), target) + 1e5 * noise regularisation, the squared
    autocorrelation of each noise map at a shift of one pixel in x and y, over its 2x
    average-pooled pyramid down to 8x8; after each step every noise map is renormalised to zero
    mean and unit variance.
The noise maps start from the network's own constant noise (the reference draws fresh N(0, 1)
maps; `noise_const` is such a draw, so this changes nothing statistically and makes the result
reproducible and renderable with noise mode 'const').

Distances (`perceptual.distance`): VGG16 LPIPS (the reference's) when its weights file is given,
else FID Inception features when those weights are given, else pixels + Laplacian pyramid.

Steps run as jitted chunks (`lax.scan` over `chunk` steps): one compilation, no per-step Python
work beyond the progress bar.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from typing import Any, Callable

import numpy as np

from stylegan_jax.cli_errors import CLIError
from stylegan_jax.perceptual.distance import VGG16

# The reference projector's defaults.
NUM_STEPS = 1000
W_AVG_SAMPLES = 10000
W_AVG_SEED = 123
INITIAL_LR = 0.1
INITIAL_NOISE_FACTOR = 0.05
LR_RAMPDOWN = 0.25
LR_RAMPUP = 0.05
NOISE_RAMP = 0.75
NOISE_REG_WEIGHT = 1e5
SPACES = ('w', 'w+')
# Noise maps: optimised with the reference's LPIPS distance; with a pixel distance they absorb image
# content (measured on the fixture net: projecting its own image, w ends 5.5 from the true latent
# with optimised unregularised noise, 2.6 with the 1e5 regulariser scaled down to 1e3, and 0.6 with
# the noise fixed, from 4.5 at w_avg), so 'auto' keeps them fixed there.
NOISE_MODES = ('auto', 'optimise', 'fixed')


class ProjectError(CLIError, ValueError):
    """Bad projection input (a target image, a setting)."""


@dataclasses.dataclass
class ProjectionResult:
    """ws [num_ws, w_dim] (final), the optimised noise maps, per-step latents and losses, the distance used."""
    ws: np.ndarray
    noise: dict[str, np.ndarray]
    ws_steps: np.ndarray          # [num_steps, num_ws, w_dim]
    dist_steps: np.ndarray        # [num_steps] distance before each step's update
    distance: str
    space: str
    noise_optimised: bool


def load_target(path: str | os.PathLike, resolution: int, channels: int = 3) -> np.ndarray:
    """uint8 [R, R, C] target: centre-cropped to a square and resized with Lanczos (the reference's way)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert('RGB' if channels == 3 else 'L')
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
            im = im.resize((resolution, resolution), Image.LANCZOS)
            arr = np.asarray(im, np.uint8)
    except FileNotFoundError:
        raise ProjectError(f'{path}: no such target image') from None
    except IsADirectoryError:
        raise ProjectError(f'{path}: is a directory, expected an image file') from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ProjectError(f'{path}: cannot read the target image ({e})') from None
    return arr[..., None] if arr.ndim == 2 else arr


def w_stats(sampler: Any, num_samples: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED,
            class_idx: int | None = None) -> tuple[np.ndarray, float]:
    """(w_avg [w_dim], w_std): mean of mapped samples and their RMS distance to it (the reference's stats)."""
    z = np.random.RandomState(seed).randn(num_samples, sampler.z_dim).astype(np.float32)
    w = sampler.ws_from_z(z, 1.0, class_idx=class_idx, batch=min(num_samples, 2500))[:, 0].astype(np.float64)
    avg = w.mean(axis=0)
    std = float(np.sqrt(np.sum((w - avg) ** 2) / num_samples))
    return avg.astype(np.float32), std


def schedule(num_steps: int, w_std: float, initial_lr: float = INITIAL_LR) -> tuple[np.ndarray, np.ndarray]:
    """(lr [num_steps], latent noise std [num_steps]) of the reference's ramps."""
    t = np.arange(num_steps, dtype=np.float64) / num_steps
    noise = w_std * INITIAL_NOISE_FACTOR * np.maximum(0.0, 1.0 - t / NOISE_RAMP) ** 2
    ramp = np.minimum(1.0, (1.0 - t) / LR_RAMPDOWN)
    ramp = (0.5 - 0.5 * np.cos(ramp * np.pi)) * np.minimum(1.0, t / LR_RAMPUP)
    return (initial_lr * ramp).astype(np.float32), noise.astype(np.float32)


def noise_regularisation(noise: dict[str, Any]) -> Any:
    """Sum over maps and their pyramid levels of the squared mean products with 1-pixel shifts in x and y."""
    import jax.numpy as jnp

    reg = 0.0
    for v in noise.values():
        while True:
            reg = reg + jnp.mean(v * jnp.roll(v, 1, axis=1)) ** 2 + jnp.mean(v * jnp.roll(v, 1, axis=0)) ** 2
            if v.shape[0] <= 8:
                break
            h, w = v.shape
            v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return reg


def make_step_fn(sampler: Any, distance: Any, num_ws: int, space: str, noise_reg_weight: float,
             optimize_noise: bool) -> Callable:
    """Jitted: (opt, adam state, target features, lrs, noise stds, keys) -> after len(lrs) steps."""
    import jax
    import jax.numpy as jnp
    import optax

    from stylegan_jax import latents, networks

    gen = networks.Generator(sampler.cfg)
    adam = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)
    base = sampler.variables

    # opt = {'w': ..., 'noise': {name: map}} when the noise is optimised, else {'w': ...} (noise from `base`).
    def loss_fn(opt, target_feats, w_noise):
        w = opt['w'] + w_noise
        ws = jnp.broadcast_to(w, (1, num_ws, w.shape[-1])) if space == 'w' else w[None]
        variables = latents.with_noise(base, opt['noise']) if optimize_noise else base
        img = gen.apply(variables, ws, 'const', method=networks.Generator.synthesize)
        img = jnp.clip(img, -1.0, 1.0)  # compared as displayed: the target is an 8-bit image
        dist = jnp.sum(jnp.square(distance.features(img) - target_feats))
        reg = noise_regularisation(opt['noise']) if optimize_noise else 0.0
        return dist + noise_reg_weight * reg, dist

    def renormalise(v):
        v = v - v.mean()
        return v * jax.lax.rsqrt(jnp.mean(jnp.square(v)))

    def one(carry, xs):
        opt, state, target_feats = carry
        lr, noise_std, key = xs
        w_noise = jax.random.normal(key, opt['w'].shape) * noise_std
        (_, dist), grads = jax.value_and_grad(loss_fn, has_aux=True)(opt, target_feats, w_noise)
        updates, state = adam.update(grads, state)
        opt = jax.tree_util.tree_map(lambda p, u: p - lr * u, opt, updates)
        if optimize_noise:
            opt = {'w': opt['w'], 'noise': {k: renormalise(v) for k, v in opt['noise'].items()}}
        return (opt, state, target_feats), (opt['w'], dist)

    @jax.jit
    def run(opt, state, target_feats, lrs, noise_stds, keys):
        (opt, state, _), (w_hist, dists) = jax.lax.scan(one, (opt, state, target_feats), (lrs, noise_stds, keys))
        return opt, state, w_hist, dists

    return run, adam


def project(sampler: Any, target: np.ndarray, distance: Any, num_steps: int = NUM_STEPS, space: str = 'w',
            seed: int = 0, class_idx: int | None = None, w_avg_samples: int = W_AVG_SAMPLES,
            initial_lr: float = INITIAL_LR, noise_reg_weight: float = NOISE_REG_WEIGHT, noise: str = 'auto',
            chunk: int = 50, progress: bool = True) -> ProjectionResult:
    """Project a uint8 target [R, R, C] (already at the model's resolution) into the sampler's generator.

    noise: 'optimise' (the reference), 'fixed' (the network's constant noise), or 'auto' = optimise with
    the VGG16 LPIPS distance and keep fixed with the others (see NOISE_MODES).
    """
    import jax
    import jax.numpy as jnp
    from tqdm import tqdm

    from stylegan_jax import latents

    cfg = sampler.cfg
    if space not in SPACES:
        raise ProjectError(f'--space must be one of {", ".join(SPACES)}, got {space!r}')
    if noise not in NOISE_MODES:
        raise ProjectError(f'--noise must be one of {", ".join(NOISE_MODES)}, got {noise!r}')
    optimize_noise = noise == 'optimise' or (noise == 'auto' and distance.name == VGG16)
    if num_steps < 1:
        raise ProjectError(f'--steps must be >= 1, got {num_steps}')
    want = (cfg.img_resolution, cfg.img_resolution, cfg.img_channels)
    if target.shape != want:
        raise ProjectError(f'target has shape {target.shape}, the network makes {want}')
    w_avg, w_std = w_stats(sampler, w_avg_samples, class_idx=class_idx)
    lrs, noise_stds = schedule(num_steps, w_std, initial_lr)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_steps)
    num_ws = cfg.num_ws
    target_img = jnp.asarray(target, jnp.float32)[None] / 127.5 - 1.0
    target_feats = jax.jit(distance.features)(target_img)
    w0 = w_avg if space == 'w' else np.repeat(w_avg[None], num_ws, axis=0)
    opt = {'w': jnp.asarray(w0)}
    if optimize_noise:
        opt['noise'] = {k: jnp.asarray(v) for k, v in latents.noise_buffers(sampler.variables).items()}
    run, adam = make_step_fn(sampler, distance, num_ws, space, noise_reg_weight, optimize_noise)
    state = adam.init(opt)
    w_hist, dists = [], []
    with tqdm(total=num_steps, desc=f'projecting ({distance.name})', unit='step', disable=not progress,
              file=sys.stderr) as bar:
        for start in range(0, num_steps, chunk):
            sl = slice(start, min(start + chunk, num_steps))
            n = sl.stop - sl.start
            # A shorter last chunk (steps not a multiple of `chunk`) compiles once more.
            opt, state, wh, d = run(opt, state, target_feats, lrs[sl], noise_stds[sl], keys[sl])
            w_hist.append(np.asarray(wh))
            dists.append(np.asarray(d))
            bar.update(n)
            bar.set_postfix(dist=f'{float(d[-1]):.4g}')
    ws_steps = np.concatenate(w_hist)
    if space == 'w':
        ws_steps = np.repeat(ws_steps[:, None], num_ws, axis=1)
    maps = {k: np.asarray(v) for k, v in (opt['noise'] if optimize_noise
                                          else latents.noise_buffers(sampler.variables)).items()}
    return ProjectionResult(ws=ws_steps[-1], noise=maps, ws_steps=ws_steps, dist_steps=np.concatenate(dists),
                            distance=distance.name, space=space, noise_optimised=optimize_noise)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
