"""StyleGAN2-ADA losses as pure functions (reference: stylegan2-ada-pytorch `training/loss.py`).

* Non-saturating logistic loss: G minimises softplus(-D(G(z))); D minimises softplus(D(G(z))) +
  softplus(-D(x)).
* R1 on reals: (gamma / 2) * |dD(x)/dx|^2, the gradient taken w.r.t. the real image *before*
  augmentation (the augmentation is part of D's forward pass, as the reference's `run_D` applies
  `augment_pipe` inside it).
* Path-length regularisation: pl_lengths = |J_w^T y| with y ~ N(0, I) / sqrt(H W) on a batch shrunk
  by `pl_batch_shrink`, penalty weight * (pl_lengths - pl_mean)^2 where pl_mean is an EMA
  (decay 0.01) of the mean length.
* Style mixing with probability 0.9: one cutoff in [1, num_ws) per (micro-)batch, as the reference.

Every loss here is one "chunk": what one reference GPU round (`batch_gpu` images) sees. The
training step (`step.py`) draws each chunk's randomness (latents, noise inputs, augmentation,
mixing cutoffs) from keys derived from the *global* chunk index and accumulates the chunks'
gradients one after another, and D's minibatch-stddev groups stay inside a chunk, so splitting a
global batch over 1 or 8 devices, or into more or fewer chunks per device, gives the same numbers.
Cross-chunk statistics (pl_mean, w_avg) are averaged over all chunks and, when `axis_name` is given
(inside `pmap`), over all devices.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from stylegan_jax import networks
from stylegan_jax.train import augment as aug


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss hyperparameters; defaults are the reference StyleGAN2Loss defaults except r1_gamma (its
    class default is 10, which its train.py always overrides): 0.8192, what --cfg=auto gives at 256x256 on
    one GPU (`specs.auto_r1_gamma`). Training passes every field from the config (`run_config`)."""
    r1_gamma: float = 0.8192
    pl_weight: float = 2.0
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing_prob: float = 0.9
    augment_spec: aug.AugmentSpec | None = aug.AugmentSpec.preset('bgc')  # None: no ADA (D sees raw images)


def _pmean(x: jax.Array, axis_name: str | None) -> jax.Array:
    return x if axis_name is None else lax.pmean(x, axis_name)


def _labels(c: jax.Array | None) -> jax.Array | None:
    return None if c is None or c.shape[-1] == 0 else c


# --------------------------------------------------------------------------- one chunk

def mapping(cfg: networks.NetworkConfig, g_vars: dict, z: jax.Array, c: jax.Array | None, key: jax.Array,
            style_mixing_prob: float) -> tuple[jax.Array, jax.Array]:
    """z -> (ws [m, num_ws, w_dim] with style mixing, w [m, w_dim] unmixed for the w_avg update)."""
    gen = networks.Generator(cfg)
    c = _labels(c)
    ws = gen.apply(g_vars, z, c, method=networks.Generator.map)
    w = ws[:, 0]
    if style_mixing_prob > 0 and cfg.num_ws > 1:
        k_cut, k_prob, k_z = jax.random.split(key, 3)
        # Reference run_G: cutoff ~ U{1..num_ws-1}, replaced by num_ws (no mixing) w.p. 1 - prob.
        cutoff = jax.random.randint(k_cut, (), 1, cfg.num_ws)
        cutoff = jnp.where(jax.random.uniform(k_prob, ()) < style_mixing_prob, cutoff, cfg.num_ws)
        ws2 = gen.apply(g_vars, jax.random.normal(k_z, z.shape, z.dtype), c, method=networks.Generator.map)
        rows = (jnp.arange(cfg.num_ws) >= cutoff)[None, :, None]
        ws = jnp.where(rows, ws2, ws)
    return ws, w


def synthesize(cfg: networks.NetworkConfig, g_vars: dict, ws: jax.Array, key: jax.Array) -> jax.Array:
    """ws -> images with random noise inputs (training mode)."""
    return networks.Generator(cfg).apply(g_vars, ws, 'random', method=networks.Generator.synthesize,
                                         rngs={'noise': key})


def run_G(cfg: networks.NetworkConfig, g_vars: dict, z: jax.Array, c: jax.Array | None, key: jax.Array,
          style_mixing_prob: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(images, ws, unmixed w) for one chunk."""
    k_map, k_syn = jax.random.split(key)
    ws, w = mapping(cfg, g_vars, z, c, k_map, style_mixing_prob)
    return synthesize(cfg, g_vars, ws, k_syn), ws, w


def run_D(cfg: networks.NetworkConfig, d_params: dict, img: jax.Array, c: jax.Array | None, key: jax.Array,
          p: jax.Array, spec: aug.AugmentSpec | None) -> jax.Array:
    """Logits [m] of one chunk; ADA augmentation (probability p) is part of the forward pass."""
    if spec is not None:
        img = aug.augment(img, p, key, spec)
    return networks.Discriminator(cfg).apply({'params': d_params}, img, _labels(c))[:, 0]


# --------------------------------------------------------------------------- losses of one chunk

def sign_stats(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(sum of sign(logit), count) over the finite logits: ADA's E[sign(D(real))] accumulators."""
    finite = jnp.isfinite(logits)
    return (jnp.sum(jnp.where(finite, jnp.sign(logits), 0.0)).astype(jnp.float32),
            jnp.sum(finite).astype(jnp.float32))


def g_main_loss(g_params: dict, g_buffers: dict, d_params: dict, z: jax.Array, c: jax.Array, key: jax.Array,
                p: jax.Array, cfg: networks.NetworkConfig, lcfg: LossConfig) -> tuple[jax.Array, dict]:
    """Gmain: mean softplus(-D(G(z))). z [m, z_dim], c [m, c_dim]. aux: w_mean, mean fake logit."""
    g_vars = {'params': g_params, 'buffers': g_buffers}
    k_g, k_d = jax.random.split(key)
    img, _, w = run_G(cfg, g_vars, z, c, k_g, lcfg.style_mixing_prob)
    logits = run_D(cfg, d_params, img, c, k_d, p, lcfg.augment_spec)
    loss = jnp.mean(jax.nn.softplus(-logits))
    return loss, {'w_mean': jnp.mean(w, axis=0), 'fake_logits': jnp.mean(logits)}


def pl_lengths_fn(g_params: dict, g_buffers: dict, z: jax.Array, c: jax.Array, key: jax.Array,
                  cfg: networks.NetworkConfig, lcfg: LossConfig) -> tuple[jax.Array, jax.Array]:
    """(pl_lengths [m'], unmixed w [m', w_dim]) of one chunk, m' = max(1, m // pl_batch_shrink)."""
    g_vars = {'params': g_params, 'buffers': g_buffers}
    m = max(1, z.shape[0] // lcfg.pl_batch_shrink)
    z, c = z[:m], c[:m]
    k_map, k_syn, k_noise = jax.random.split(key, 3)
    ws, w = mapping(cfg, g_vars, z, c, k_map, lcfg.style_mixing_prob)
    img, vjp = jax.vjp(lambda ws_: synthesize(cfg, g_vars, ws_, k_syn), ws)
    res = img.shape[1] * img.shape[2]
    pl_noise = jax.random.normal(k_noise, img.shape, img.dtype) / np.sqrt(res)
    (pl_grads,) = vjp(pl_noise)  # d sum(img * noise) / d ws, differentiable (create_graph)
    lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(pl_grads.astype(jnp.float32)), axis=2), axis=1))
    return lengths, w


def g_pl_loss(g_params: dict, g_buffers: dict, pl_mean: jax.Array, z: jax.Array, c: jax.Array, key: jax.Array,
              cfg: networks.NetworkConfig, lcfg: LossConfig, mean_len: jax.Array | None = None,
              axis_name: str | None = None) -> tuple[jax.Array, dict]:
    """Greg: pl_weight * mean (pl_lengths - pl_mean')^2 with pl_mean' = lerp(pl_mean, mean length, decay).

    `mean_len` is the mean length over the whole (global) batch; None = this chunk's, averaged over
    `axis_name` (the batch is one chunk per device). aux: new pl_mean, mean length, penalty, w_mean.
    """
    lengths, w = pl_lengths_fn(g_params, g_buffers, z, c, key, cfg, lcfg)
    if mean_len is None:
        mean_len = _pmean(lax.stop_gradient(jnp.mean(lengths)), axis_name)
    new_mean = pl_mean + (mean_len - pl_mean) * lcfg.pl_decay
    penalty = jnp.square(lengths - new_mean)
    loss = jnp.mean(penalty) * lcfg.pl_weight
    return loss, {'pl_mean': new_mean, 'pl_length': mean_len, 'pl_penalty': jnp.mean(penalty),
                  'w_mean': jnp.mean(w, axis=0)}


def d_main_loss(d_params: dict, g_vars: dict, real: jax.Array, c_real: jax.Array, z: jax.Array, c_gen: jax.Array,
                key: jax.Array, p: jax.Array, cfg: networks.NetworkConfig, lcfg: LossConfig,
                r1: bool = False) -> tuple[jax.Array, dict]:
    """Dmain (+ R1 when `r1`, i.e. the reference's 'Dboth'): mean softplus(D(G(z))) + mean softplus(-D(x)).

    real [m, R, R, C] float in [-1, 1]. aux: real/fake logit means, sign sum and count of D(x) (ADA),
    w_mean of the generated batch, r1 penalty when `r1`.
    """
    k_g, k_df, k_dr = jax.random.split(key, 3)
    img, _, w = run_G(cfg, g_vars, z, c_gen, k_g, lcfg.style_mixing_prob)
    fake_logits = run_D(cfg, d_params, lax.stop_gradient(img), c_gen, k_df, p, lcfg.augment_spec)
    real_logits = run_D(cfg, d_params, real, c_real, k_dr, p, lcfg.augment_spec)
    loss = jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))
    sign_sum, count = sign_stats(real_logits)
    aux = {'fake_logits': jnp.mean(fake_logits), 'real_logits': jnp.mean(real_logits),
           'real_sign_sum': sign_sum, 'real_count': count, 'w_mean': jnp.mean(w, axis=0)}
    if r1:
        r1_loss, r1_aux = d_r1_loss(d_params, real, c_real, k_dr, p, cfg, lcfg)
        loss = loss + r1_loss
        aux['r1_penalty'] = r1_aux['r1_penalty']
    return loss, aux


def r1_penalty_fn(d_params: dict, real: jax.Array, c: jax.Array, key: jax.Array, p: jax.Array,
                  cfg: networks.NetworkConfig, lcfg: LossConfig) -> tuple[jax.Array, jax.Array]:
    """(|dD(x)/dx|^2 per image [m], logits [m]) of one chunk; x is the un-augmented real image."""
    def total(x):
        logits = run_D(cfg, d_params, x, c, key, p, lcfg.augment_spec)
        return jnp.sum(logits), logits

    grads, logits = jax.grad(total, has_aux=True)(real)
    return jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=(1, 2, 3)), logits


def d_r1_loss(d_params: dict, real: jax.Array, c: jax.Array, key: jax.Array, p: jax.Array,
              cfg: networks.NetworkConfig, lcfg: LossConfig) -> tuple[jax.Array, dict]:
    """Dreg: mean (r1_gamma / 2) * |dD(x)/dx|^2. aux: r1_penalty (mean |grad|^2), sign stats of D(x)."""
    penalty, logits = r1_penalty_fn(d_params, real, c, key, p, cfg, lcfg)
    loss = jnp.mean(penalty) * (lcfg.r1_gamma / 2)
    sign_sum, count = sign_stats(logits)
    return loss, {'r1_penalty': jnp.mean(penalty), 'real_logits': jnp.mean(logits),
                  'real_sign_sum': sign_sum, 'real_count': count}
