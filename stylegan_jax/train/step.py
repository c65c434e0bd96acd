"""Pure StyleGAN2-ADA training steps, data-parallel with `jax.pmap` (reference: `training/training_loop.py`).

One training step runs the reference's phases in its order, each its own Adam update:

    Gmain (every step), Greg (path length, every G_reg_interval=4), Dmain (every step),
    Dreg (R1, every D_reg_interval=16)

or, with an interval of 0 (the reference's None), 'Gboth' / 'Dboth': the main loss and the
regulariser together in one update every step. Then the G EMA update (ema_kimg with ramp-up), the
w_avg tracking (inside the G-running phases), and every `ada_interval` steps the ADA p update from
r_t = E[sign(D(real))]. Lazy regularisation is compensated as in the reference: Adam lr * c and
betas ** c with c = interval / (interval + 1), and the regularisation loss multiplied by its interval.

Every phase function is `pmap`ped over the local devices with the axis name 'batch'; gradients, losses,
statistics (pl_mean, w_avg, ADA signs) are averaged over it, so all devices hold identical state. All
randomness is derived from (state.rng, state.step, phase, global chunk index).

Memory, as the reference's `batch_gpu`: a device's batch is split into chunks of `batch_gpu` images
whose gradients are accumulated one chunk after another (`lax.scan`), so only one chunk's
activations are alive at a time. 1 device x batch B and 8 devices x B/8, in chunks of any size that
divides them, compute the same step (up to float summation order). The train state is donated to
each phase (updated in place: no second copy of parameters and Adam moments).

Non-finite losses or gradients (`TrainConfig.nonfinite`):
* 'skip' (default): a phase whose loss or gradients are not finite makes no update (parameters, Adam
  moments, pl_mean, w_avg, ADA statistics unchanged; selected with `jnp.where` inside the phase),
  nor does the G EMA of that step; the step counter advances so the next step draws new randomness.
* 'nan_to_num': the reference's policy for float16 training: NaN gradients become 0 and +-Inf
  +-1e5, and the update is applied.
Either way the step's `ok` says whether everything was finite (the loop counts bad steps).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
from typing import Any, Callable, Iterable, Iterator

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from stylegan_jax import networks
from stylegan_jax.train import augment as aug
from stylegan_jax.train import losses

AXIS = 'batch'
NONFINITE_POLICIES = ('skip', 'nan_to_num')

# Phase identifiers folded into the step key (fixed: changing them changes every random draw). The
# 'both' phases draw with their main phase's keys (Dboth is Dmain with R1 added).
_PHASE_ID = {'Gmain': 0, 'Greg': 1, 'Dmain': 2, 'Dreg': 3}
_KEY_PHASE = {'Gmain': 'Gmain', 'Greg': 'Greg', 'Gboth': 'Gmain', 'Dmain': 'Dmain', 'Dreg': 'Dreg',
              'Dboth': 'Dmain'}
PHASES = tuple(_KEY_PHASE)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static optimisation settings (hashable; derived from config.train / config.ada by the loop)."""
    batch: int = 16                      # global batch (all processes, all devices)
    batch_gpu: int | None = None         # images per accumulation round (reference batch_gpu): memory, RNG, mbstd and PL groups; None = per-device batch
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    g_reg_interval: int = 4              # 0: no lazy regularisation (Gboth: PL every step, as the reference's None)
    d_reg_interval: int = 16             # 0: Dboth (R1 every step)
    ema_kimg: float = 5.0
    ema_rampup: float | None = 0.05
    ada_target: float | None = 0.6       # None: fixed p (config.ada.p)
    ada_interval: int = 4
    ada_kimg: float = 500.0
    freeze_d: int = 0                    # D blocks (from the highest resolution) that get no updates; never the epilogue
    nonfinite: str = 'skip'              # 'skip' | 'nan_to_num' (reference; for float16)
    loss: losses.LossConfig = losses.LossConfig()

    def __post_init__(self) -> None:
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite must be one of {', '.join(map(repr, NONFINITE_POLICIES))}, "
                             f'got {self.nonfinite!r}')


@flax.struct.dataclass
class TrainState:
    """Everything a resumed run needs (all arrays; replicated over devices inside the loop)."""
    g_params: Any
    g_buffers: Any
    d_params: Any
    ema_params: Any
    ema_buffers: Any
    g_opt: Any
    d_opt: Any
    pl_mean: jax.Array
    ada_p: jax.Array
    ada_sum: jax.Array    # sum of sign(D(real)) since the last ADA update
    ada_count: jax.Array
    step: jax.Array       # int32, number of steps taken (also the data position)
    rng: jax.Array        # base PRNG key (constant); step keys are fold_in(rng, step)

    @property
    def g_vars(self) -> dict:
        return {'params': self.g_params, 'buffers': self.g_buffers}

    @property
    def ema_vars(self) -> dict:
        return {'params': self.ema_params, 'buffers': self.ema_buffers}


# --------------------------------------------------------------------------- optimisers and state

def lazy_ratio(interval: int | None) -> float:
    """c = interval / (interval + 1) (1 without lazy regularisation)."""
    return interval / (interval + 1) if interval else 1.0


def make_optimizer(lr: float, betas: tuple[float, float], eps: float, reg_interval: int | None
                   ) -> optax.GradientTransformation:
    """Adam with the reference's lazy-regularisation correction: lr * c, betas ** c."""
    c = lazy_ratio(reg_interval)
    return optax.adam(learning_rate=lr * c, b1=betas[0] ** c, b2=betas[1] ** c, eps=eps)


def freeze_mask(cfg: networks.NetworkConfig, d_params: dict, freeze_d: int) -> dict:
    """Pytree of bools over D's params: True = trainable. FreezeD freezes the first `freeze_d` blocks,
    counted from the highest resolution (b{R}, b{R/2}, ..., b8); the epilogue b4 (and a conditional
    D's label mapping) always trains, as in the reference, whatever `freeze_d` says."""
    frozen = set()
    res = cfg.img_resolution
    for _ in range(freeze_d):
        if res <= 4:
            break
        frozen.add(f'b{res}')
        res //= 2
    return {k: jax.tree_util.tree_map(lambda _: k not in frozen, v) for k, v in d_params.items()}


def _init_networks(cfg: networks.NetworkConfig, key: jax.Array) -> tuple[dict, dict]:
    k_g, k_d = jax.random.split(key)
    return networks.init_generator(cfg, k_g), networks.init_discriminator(cfg, k_d)


def init_networks(cfg: networks.NetworkConfig, key: jax.Array) -> tuple[dict, dict]:
    """(G variables, D variables) as numpy trees, with the reference initialisation:
    `networks.init_generator` and `init_discriminator` on the two halves of `key`."""
    return jax.tree_util.tree_map(np.asarray, _init_networks(cfg, key))


def init_state(cfg: networks.NetworkConfig, tc: TrainConfig, key: jax.Array, g_vars: dict | None = None,
               d_vars: dict | None = None, ema_vars: dict | None = None, ada_p: float = 0.0) -> TrainState:
    """Fresh state (reference init) or one built from given variables (transfer learning)."""
    k_net, k_rng = jax.random.split(key)
    if g_vars is None or d_vars is None:
        g_init, d_init = _init_networks(cfg, k_net)
        g_vars = g_vars if g_vars is not None else g_init
        d_vars = d_vars if d_vars is not None else d_init
    ema_vars = ema_vars if ema_vars is not None else g_vars
    g_tx = make_optimizer(tc.g_lr, tc.betas, tc.eps, tc.g_reg_interval)
    d_tx = make_optimizer(tc.d_lr, tc.betas, tc.eps, tc.d_reg_interval)
    as_jnp = functools.partial(jax.tree_util.tree_map, jnp.asarray)
    g_params, d_params = as_jnp(g_vars['params']), as_jnp(d_vars['params'])
    return TrainState(
        g_params=g_params, g_buffers=as_jnp(g_vars.get('buffers', {})), d_params=d_params,
        ema_params=as_jnp(ema_vars['params']), ema_buffers=as_jnp(ema_vars.get('buffers', {})),
        g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params),
        pl_mean=jnp.zeros((), jnp.float32), ada_p=jnp.asarray(ada_p, jnp.float32),
        ada_sum=jnp.zeros((), jnp.float32), ada_count=jnp.zeros((), jnp.float32),
        step=jnp.zeros((), jnp.int32), rng=k_rng)


def abstract_state(cfg: networks.NetworkConfig, tc: TrainConfig) -> TrainState:
    """The state's shapes and dtypes (jax.ShapeDtypeStruct leaves), computed without running anything."""
    return jax.eval_shape(lambda key: init_state(cfg, tc, key), jax.random.PRNGKey(0))


# --------------------------------------------------------------------------- pure helpers

def _all_finite(*trees: Any) -> jax.Array:
    leaves = [x for t in trees for x in jax.tree_util.tree_leaves(t)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _select(pred: jax.Array, new: Any, old: Any) -> Any:
    """`new` where pred else `old`, leaf by leaf (elementwise, so XLA updates donated buffers in place)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)


def _ema_beta(tc: TrainConfig, step: jax.Array) -> jax.Array:
    """Reference: ema_nimg = min(ema_kimg*1000, cur_nimg*rampup); beta = 0.5 ** (batch / ema_nimg)."""
    ema_nimg = jnp.asarray(tc.ema_kimg * 1000.0, jnp.float32)
    if tc.ema_rampup is not None:
        ema_nimg = jnp.minimum(ema_nimg, step.astype(jnp.float32) * tc.batch * tc.ema_rampup)
    return jnp.power(0.5, tc.batch / jnp.maximum(ema_nimg, 1e-8))


def update_w_avg(cfg: networks.NetworkConfig, buffers: dict, w_mean: jax.Array, axis_name: str | None = None
                 ) -> dict:
    """The mapping's w_avg tracking (reference MappingNetwork: w_avg = lerp(batch mean of w, w_avg, beta))
    with the batch mean over all devices (`axis_name`): `w_mean` is this device's mean unmixed w."""
    if cfg.w_avg_beta is None or 'mapping' not in buffers:
        return buffers
    w_mean = lax.pmean(w_mean, axis_name) if axis_name else w_mean
    old = buffers['mapping']['w_avg']
    new = w_mean + (old - w_mean) * cfg.w_avg_beta
    return {**buffers, 'mapping': {**buffers['mapping'], 'w_avg': new}}


def _pmean(x: Any, axis_name: str | None) -> Any:
    return lax.pmean(x, axis_name) if axis_name else x


def _psum(x: Any, axis_name: str | None) -> Any:
    return lax.psum(x, axis_name) if axis_name else x


def _first(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def sum_over_chunks(fn: Callable[[Any], Any], chunks: Any) -> Any:
    """sum_i fn(chunk i) over the leading axis of `chunks`, one chunk after another (`lax.scan`):
    only one chunk's intermediate values (activations) are alive at a time."""
    n = jax.tree_util.tree_leaves(chunks)[0].shape[0]
    if n == 1:
        return fn(_first(chunks))
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, _first(chunks)))

    def body(total: Any, chunk: Any) -> tuple[Any, None]:
        return jax.tree_util.tree_map(jnp.add, total, fn(chunk)), None

    total, _ = lax.scan(body, zeros, chunks)
    return total


class Trainer:
    """Builds and holds the jitted (pmapped) phase functions for one (network config, train config).

    `step(state, batch, step)` runs one full training step on a replicated state, which it donates
    (the caller must use the returned state, not the old one); `batch` is
    {'image': uint8 [n_dev, b, R, R, C], 'label': float32 [n_dev, b, c_dim]} (per-process, sharded by
    the leading axis). Returns (state, metrics, ok) with metrics/ok still on the devices.
    """

    def __init__(self, cfg: networks.NetworkConfig, tc: TrainConfig, devices: list | None = None) -> None:
        self.cfg, self.tc = cfg, tc
        self.devices = list(devices or jax.local_devices())
        self.n_local = len(self.devices)
        n_global = self.n_local * jax.process_count()
        if tc.batch % n_global:
            raise ValueError(f'batch {tc.batch} is not divisible by the {n_global} devices')
        self.per_device = tc.batch // n_global
        self.chunk = tc.batch_gpu or self.per_device
        if self.per_device % self.chunk:
            raise ValueError(f'per-device batch {self.per_device} is not divisible by batch_gpu {self.chunk}')
        self.n_chunks = self.per_device // self.chunk
        self.g_tx = make_optimizer(tc.g_lr, tc.betas, tc.eps, tc.g_reg_interval)
        self.d_tx = make_optimizer(tc.d_lr, tc.betas, tc.eps, tc.d_reg_interval)
        # Donating the state (argument 0) lets XLA write the updated state over the old one. With
        # several processes pmap must span every process's devices (devices=None), or the
        # collectives would average within each process only; each process still feeds its own.
        pmap_devices = self.devices if jax.process_count() == 1 else None
        pm = functools.partial(jax.pmap, axis_name=AXIS, devices=pmap_devices, donate_argnums=(0,))
        self.p_phase = {name: pm(functools.partial(self.phase, name, axis_name=AXIS)) for name in PHASES}
        self.p_finish = pm(functools.partial(self.finish, axis_name=AXIS))

    # ---- inputs

    def _chunk_inputs(self, state: TrainState, batch: dict, phase: str, axis_name: str | None) -> dict:
        """Per-chunk inputs [n_chunks, ...]: uint8 images, labels, and the chunk keys
        fold_in(fold_in(fold_in(rng, step), phase), global chunk index)."""
        k = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), _PHASE_ID[_KEY_PHASE[phase]])
        dev = lax.axis_index(axis_name) if axis_name else 0
        keys = jax.vmap(lambda i: jax.random.fold_in(k, i))(dev * self.n_chunks + jnp.arange(self.n_chunks))
        img = batch['image']
        labels = batch.get('label')
        if labels is None:
            labels = jnp.zeros((img.shape[0], self.cfg.c_dim), jnp.float32)
        chunks = lambda x: x.reshape((self.n_chunks, self.chunk) + x.shape[1:])  # noqa: E731
        return {'image': chunks(img), 'label': chunks(labels.astype(jnp.float32)), 'key': keys}

    def _latents(self, chunk: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(z [m, z_dim], generator labels [m, c_dim], remaining key) of one chunk."""
        k_z, k_c, key = jax.random.split(chunk['key'], 3)
        z = jax.random.normal(k_z, (self.chunk, self.cfg.z_dim))
        c = chunk['label']
        if self.cfg.c_dim:  # reference draws labels of random dataset items: here a shuffle of the real labels
            c = jax.random.permutation(k_c, c)
        return z, c, key

    @staticmethod
    def _real(chunk: dict) -> jax.Array:
        return chunk['image'].astype(jnp.float32) / 127.5 - 1.0

    # ---- updates

    def _update(self, tx: optax.GradientTransformation, params: Any, opt: Any, grads: Any, loss: jax.Array,
                mask: Any | None = None) -> tuple[Any, Any, jax.Array]:
        """One Adam step under the non-finite policy; returns (params, opt, finite)."""
        ok = _all_finite(loss, grads)
        if self.tc.nonfinite == 'nan_to_num':  # reference training_loop: misc.nan_to_num on every grad
            grads = jax.tree_util.tree_map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5), grads)
        if mask is not None:
            grads = jax.tree_util.tree_map(lambda g, m: g if m else jnp.zeros_like(g), grads, mask)
        updates, new_opt = tx.update(grads, opt, params)
        if mask is not None:
            updates = jax.tree_util.tree_map(lambda u, m: u if m else jnp.zeros_like(u), updates, mask)
        new_params = optax.apply_updates(params, updates)
        if self.tc.nonfinite == 'skip':
            new_params, new_opt = _select(ok, new_params, params), _select(ok, new_opt, opt)
        return new_params, new_opt, ok

    def _keep(self, ok: jax.Array, new: Any, old: Any) -> Any:
        """A statistic's new value when it is finite (and, under 'skip', the phase was), else the old one."""
        good = _all_finite(new)
        if self.tc.nonfinite == 'skip':
            good = good & ok
        return _select(good, new, old)

    # ---- phases (per device; `axis_name` None = single device without pmap)

    def phase(self, name: str, state: TrainState, batch: dict, ok: jax.Array | None = None,
              axis_name: str | None = None) -> tuple[TrainState, dict, jax.Array]:
        """Run phase `name` (one of PHASES); `ok` is the step's finiteness so far (None before the first)."""
        fn = self._g_phase if name.startswith('G') else self._d_phase
        state, metrics, phase_ok = fn(name, state, self._chunk_inputs(state, batch, name, axis_name), axis_name)
        return state, metrics, phase_ok if ok is None else ok & phase_ok

    def _g_phase(self, name: str, state: TrainState, xs: dict, axis_name: str | None
                 ) -> tuple[TrainState, dict, jax.Array]:
        """Gmain (non-saturating G loss), Greg (path length x G_reg_interval; pl_mean EMA) or Gboth;
        one Adam step on G; w_avg tracked with the mapped w of each G run."""
        cfg, lc, n = self.cfg, self.tc.loss, self.n_chunks
        main, pl = name in ('Gmain', 'Gboth'), name in ('Greg', 'Gboth')
        gain = (self.tc.g_reg_interval or 1) if name == 'Greg' else 1

        def pl_key(key: jax.Array) -> jax.Array:  # Gboth: PL on the Gmain latents, with its own noise
            return jax.random.fold_in(key, 1) if main else key

        mean_len = None
        if pl and n > 1:  # pl_mean' needs the mean length over the whole batch before any chunk's gradient
            def length(chunk: dict) -> jax.Array:
                z, c, key = self._latents(chunk)
                return jnp.mean(losses.pl_lengths_fn(state.g_params, state.g_buffers, z, c, pl_key(key), cfg, lc)[0])
            mean_len = _pmean(lax.stop_gradient(sum_over_chunks(length, xs)) / n, axis_name)

        def loss_fn(params: dict, chunk: dict) -> tuple[jax.Array, dict]:
            z, c, key = self._latents(chunk)
            total, aux = jnp.zeros((), jnp.float32), {}
            if main:
                total, a = losses.g_main_loss(params, state.g_buffers, state.d_params, z, c, key, state.ada_p, cfg, lc)
                aux.update(loss_main=total, fake_logits=a['fake_logits'], w_main=a['w_mean'])
            if pl:
                loss_pl, a = losses.g_pl_loss(params, state.g_buffers, state.pl_mean, z, c, pl_key(key), cfg, lc,
                                              mean_len, axis_name)
                total = total + loss_pl * gain
                aux.update(loss_pl=loss_pl, pl_penalty=a['pl_penalty'], pl_mean=a['pl_mean'],
                           pl_length=a['pl_length'], w_pl=a['w_mean'])
            return total, aux

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, aux), grads = sum_over_chunks(lambda chunk: grad_fn(state.g_params, chunk), xs)
        loss, aux, grads = jax.tree_util.tree_map(lambda x: x / n, (loss, aux, grads))
        grads, loss, aux = _pmean((grads, loss, aux), axis_name)
        g_params, g_opt, ok = self._update(self.g_tx, state.g_params, state.g_opt, grads, loss)
        buffers, metrics = state.g_buffers, {}
        if main:
            buffers = update_w_avg(cfg, buffers, aux['w_main'], axis_name)
            metrics.update({'Loss/G/loss': aux['loss_main'], 'Loss/scores/fake_G': aux['fake_logits']})
        pl_mean = state.pl_mean
        if pl:
            buffers = update_w_avg(cfg, buffers, aux['w_pl'], axis_name)
            if mean_len is not None:  # the chunks' identical values, averaged: take them exactly
                aux['pl_length'] = mean_len
                aux['pl_mean'] = state.pl_mean + (mean_len - state.pl_mean) * lc.pl_decay
            pl_mean = self._keep(ok, aux['pl_mean'], state.pl_mean)
            metrics.update({'Loss/G/reg': aux['loss_pl'], 'Loss/pl_penalty': aux['pl_penalty'],
                            'Loss/pl_length': aux['pl_length'], 'Loss/pl_mean': aux['pl_mean']})
        buffers = self._keep(ok, buffers, state.g_buffers)
        return state.replace(g_params=g_params, g_opt=g_opt, g_buffers=buffers, pl_mean=pl_mean), metrics, ok

    def _d_phase(self, name: str, state: TrainState, xs: dict, axis_name: str | None
                 ) -> tuple[TrainState, dict, jax.Array]:
        """Dmain (D loss on G(z) and reals; w_avg tracked), Dreg (R1 x D_reg_interval) or Dboth; one Adam
        step on D (FreezeD mask); ADA's sign statistics of D(real) accumulated."""
        cfg, lc, n = self.cfg, self.tc.loss, self.n_chunks
        main, r1 = name in ('Dmain', 'Dboth'), name in ('Dreg', 'Dboth')

        def loss_fn(params: dict, chunk: dict) -> tuple[jax.Array, dict]:
            real, labels = self._real(chunk), chunk['label']
            if main:
                z, c, key = self._latents(chunk)
                return losses.d_main_loss(params, state.g_vars, real, labels, z, c, key, state.ada_p, cfg, lc, r1=r1)
            return losses.d_r1_loss(params, real, labels, chunk['key'], state.ada_p, cfg, lc)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, aux), grads = sum_over_chunks(lambda chunk: grad_fn(state.d_params, chunk), xs)
        sign_sum, count = _psum((aux.pop('real_sign_sum'), aux.pop('real_count')), axis_name)
        loss, aux, grads = jax.tree_util.tree_map(lambda x: x / n, (loss, aux, grads))
        if name == 'Dreg':
            grads = jax.tree_util.tree_map(lambda g: g * (self.tc.d_reg_interval or 1), grads)
        grads, loss, aux = _pmean((grads, loss, aux), axis_name)
        mask = freeze_mask(cfg, state.d_params, self.tc.freeze_d) if self.tc.freeze_d else None
        d_params, d_opt, ok = self._update(self.d_tx, state.d_params, state.d_opt, grads, loss, mask)
        ada_sum, ada_count = self._keep(ok, (state.ada_sum + sign_sum, state.ada_count + count),
                                        (state.ada_sum, state.ada_count))
        state = state.replace(d_params=d_params, d_opt=d_opt, ada_sum=ada_sum, ada_count=ada_count)
        if main:
            buffers = update_w_avg(cfg, state.g_buffers, aux['w_mean'], axis_name)
            state = state.replace(g_buffers=self._keep(ok, buffers, state.g_buffers))
            metrics = {'Loss/D/loss': loss, 'Loss/scores/fake': aux['fake_logits'],
                       'Loss/scores/real': aux['real_logits']}
        else:
            metrics = {'Loss/D/reg': loss}
        if r1:
            metrics['Loss/r1_penalty'] = aux['r1_penalty']
        return state, metrics, ok

    def finish(self, state: TrainState, ok: jax.Array, axis_name: str | None = None) -> tuple[TrainState, dict]:
        """G EMA (skipped on a bad step under 'skip'), ADA p update from r_t every ada_interval steps,
        step + 1. Metrics: 'Loss/signs/real' = r_t, the mean sign of D(real) since the last ADA update."""
        tc = self.tc
        beta = _ema_beta(tc, state.step)
        ema_params = jax.tree_util.tree_map(lambda p, e: p + (e - p) * beta, state.g_params, state.ema_params)
        ema_buffers = state.g_buffers
        if tc.nonfinite == 'skip':
            ema_params, ema_buffers = _select(ok, (ema_params, ema_buffers), (state.ema_params, state.ema_buffers))
        step = state.step + 1
        due = (step % tc.ada_interval) == 0
        r_t = state.ada_sum / jnp.maximum(state.ada_count, 1.0)
        ada_p = state.ada_p
        if tc.ada_target is not None:
            p_new = aug.ada_update(ada_p, r_t, batch_images=tc.batch, interval=tc.ada_interval,
                                   target=tc.ada_target, speed_kimg=tc.ada_kimg)
            ada_p = jnp.where(due & (state.ada_count > 0), p_new, ada_p)
        state = state.replace(ema_params=ema_params, ema_buffers=ema_buffers, ada_p=ada_p,
                              ada_sum=jnp.where(due, 0.0, state.ada_sum),
                              ada_count=jnp.where(due, 0.0, state.ada_count), step=step)
        return state, {'Progress/augment': ada_p, 'Progress/ema_beta': beta, 'Loss/signs/real': r_t}

    # ---- driver

    def phases(self, step: int) -> list[str]:
        """The reference's phases due at (0-based) step `step`."""
        tc, lc = self.tc, self.tc.loss
        if not tc.g_reg_interval:
            out = ['Gboth' if lc.pl_weight else 'Gmain']
        else:
            out = ['Gmain'] + (['Greg'] if lc.pl_weight and step % tc.g_reg_interval == 0 else [])
        if not tc.d_reg_interval:
            out.append('Dboth' if lc.r1_gamma else 'Dmain')
        else:
            out += ['Dmain'] + (['Dreg'] if lc.r1_gamma and step % tc.d_reg_interval == 0 else [])
        return out

    def step(self, state: TrainState, batch: dict, step: int) -> tuple[TrainState, dict, jax.Array]:
        """One training step on a replicated state (donated: use the returned one). `step` is the host
        copy of state.step (chooses the phases)."""
        metrics, ok = {}, None
        for name in self.phases(step):
            state, m, ok = self.p_phase[name](state, batch, ok)
            metrics.update(m)
        state, m = self.p_finish(state, ok)
        metrics.update(m)
        return state, metrics, ok
    # ---- ahead-of-time compilation (benchmarks, memory analysis)

    def compile_phase(self, name: str) -> Any:
        """Lower and compile phase `name` (or 'finish') for abstract inputs of this trainer's shapes, with
        the signature `step` calls it with; returns jax's Compiled (`.memory_analysis()`, `.cost_analysis()`)."""
        n = self.n_local
        rep = lambda s: jax.ShapeDtypeStruct((n,) + tuple(s.shape), s.dtype)  # noqa: E731
        state = jax.tree_util.tree_map(rep, abstract_state(self.cfg, self.tc))
        ok = jax.ShapeDtypeStruct((n,), jnp.bool_)
        if name == 'finish':
            return self.p_finish.lower(state, ok).compile()
        r, ch = self.cfg.img_resolution, self.cfg.img_channels
        batch = {'image': jax.ShapeDtypeStruct((n, self.per_device, r, r, ch), jnp.uint8),
                 'label': jax.ShapeDtypeStruct((n, self.per_device, self.cfg.c_dim), jnp.float32)}
        first = name in ('Gmain', 'Gboth')  # the step's first phase starts the `ok` chain (None)
        return self.p_phase[name].lower(state, batch, None if first else ok).compile()

    def memory_analysis(self, name: str, compiled: Any | None = None) -> dict[str, int]:
        """XLA's compiled memory analysis of one phase (`compiled`: from `compile_phase`), per device, in
        bytes: arguments (state, batch), outputs, aliased (the donated state written over), temporaries,
        total = arguments + outputs - aliased + temporaries (what the phase needs at its peak), and the
        train state's size."""
        m = (compiled or self.compile_phase(name)).memory_analysis()
        out = {'argument_bytes': int(m.argument_size_in_bytes), 'output_bytes': int(m.output_size_in_bytes),
               'alias_bytes': int(m.alias_size_in_bytes), 'temp_bytes': int(m.temp_size_in_bytes),
               'state_bytes': sum(x.size * x.dtype.itemsize
                                  for x in jax.tree_util.tree_leaves(abstract_state(self.cfg, self.tc)))}
        out['total_bytes'] = out['argument_bytes'] + out['output_bytes'] - out['alias_bytes'] + out['temp_bytes']
        return out

    def shard(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-process batch [b, ...] -> [n_local_devices, b / n_local_devices, ...] (pmap splits axis 0)."""
        n = self.n_local
        return {k: v.reshape((n, v.shape[0] // n) + v.shape[1:]) for k, v in batch.items()}

    def _device_sharding(self) -> jax.sharding.NamedSharding:
        """Leading axis split over the local devices: the sharding pmap itself produces (jax >= 0.8
        implements pmap with shard_map), so arrays placed with it go in without a copy."""
        mesh = jax.sharding.Mesh(np.asarray(self.devices), (AXIS,))
        return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))

    def replicate(self, state: TrainState) -> TrainState:
        """Copy a host/single-device state onto every local device (leading device axis)."""
        n, sharding = self.n_local, self._device_sharding()

        def put(x: Any) -> jax.Array:
            return jax.device_put(np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), sharding)

        return jax.tree_util.tree_map(put, state)

    def prefetch(self, batches: Iterator[dict[str, np.ndarray]], size: int = 2) -> Iterator[dict[str, jax.Array]]:
        """Shard per-process batches and start their host-to-device copies `size` steps ahead, so the
        transfer overlaps the running step (device_put is asynchronous)."""
        sharding = self._device_sharding()
        queue: collections.deque = collections.deque()

        def enqueue(n: int) -> None:
            for batch in itertools.islice(batches, n):
                queue.append({k: jax.device_put(v, sharding) for k, v in self.shard(batch).items()})

        enqueue(size)
        while queue:
            yield queue.popleft()
            enqueue(1)

    @staticmethod
    def unreplicate(tree: Any) -> Any:
        """The first local device's copy of every leaf of a replicated tree (state, metrics, ok).

        Reads one shard instead of indexing: `x[0]` on an array sharded over the devices is a
        computation over all of them with a collective, and XLA:CPU aborts the whole process when a
        collective's participants do not all arrive within its timeout, which happened with 8
        virtual CPU devices on a loaded 2-core host.
        """
        def first(x: Any) -> Any:
            if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
                return x.addressable_shards[0].data.reshape(x.shape[1:])  # one device, no collective
            return x[0]

        return jax.tree_util.tree_map(first, tree)


class TrainerCache:
    """Trainers by (network config, train config, devices), held by whoever wants a repeated or
    resumed run in one process to reuse the compiled steps (e.g. a test session). Across processes,
    `stylegan_jax.compile_cache.enable()` (JAX's persistent compilation cache) does the same."""

    def __init__(self) -> None:
        self._trainers: dict[tuple, Trainer] = {}

    def get(self, cfg: networks.NetworkConfig, tc: TrainConfig, devices: list | None = None) -> Trainer:
        devices = list(devices or jax.local_devices())
        key = (cfg, tc, tuple(d.id for d in devices))
        if key not in self._trainers:
            self._trainers[key] = Trainer(cfg, tc, devices)
        return self._trainers[key]


def get_trainer(cfg: networks.NetworkConfig, tc: TrainConfig, devices: list | None = None,
                cache: TrainerCache | None = None) -> Trainer:
    """The Trainer of (configs, devices): from `cache` when given (reusing its compiled steps), else new."""
    return cache.get(cfg, tc, devices) if cache is not None else Trainer(cfg, tc, devices)


def train_steps(trainer: Trainer, state: TrainState, batches: Iterable[dict], start: int = 0
                ) -> tuple[TrainState, list[dict]]:
    """Run steps over an iterable of per-process batches (replicated state in and out); metrics on host."""
    out = []
    for i, batch in enumerate(batches):
        state, metrics, ok = trainer.step(state, trainer.shard(batch), start + i)
        out.append({**jax.device_get(trainer.unreplicate(metrics)), 'ok': bool(trainer.unreplicate(ok))})
    return state, out
