"""Pure StyleGAN2-ADA training steps, data-parallel with `jax.pmap` (reference: `training/training_loop.py`).

One training step runs the reference's phases in its order, each its own Adam update:

    Gmain (every step), Greg (path length, every G_reg_interval=4), Dmain (every step),
    Dreg (R1, every D_reg_interval=16)

then the G EMA update (ema_kimg with ramp-up), the w_avg tracking (inside the G phases), and every
`ada_interval` steps the ADA p update from E[sign(D(real))]. Lazy regularisation is compensated as in
the reference: Adam lr * c and betas ** c with c = interval / (interval + 1), and the regularisation
loss multiplied by its interval.

Every phase function is `pmap`ped over the local devices with the axis name 'batch'; gradients, losses,
statistics (pl_mean, w_avg, ADA signs) are averaged over it, so all devices hold identical state. All
randomness is derived from (state.rng, state.step, phase, global chunk index): with `batch_gpu` as the
chunk size, 1 device x batch B and 8 devices x B/8 compute the same step.

NaN/Inf guard: if any loss or gradient of the step is non-finite, the whole state is kept (except the
step counter, which advances so the next step draws new randomness) and `ok` is False.
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

# Phase identifiers folded into the step key (fixed: changing them changes every random draw).
_PHASE_ID = {'Gmain': 0, 'Greg': 1, 'Dmain': 2, 'Dreg': 3}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static optimisation settings (hashable; derived from config.train / config.ada by the loop)."""
    batch: int = 32                      # global batch (all processes, all devices)
    batch_gpu: int | None = None         # chunk size (reference batch_gpu): RNG, mbstd and PL groups; None = per-device batch
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    g_reg_interval: int = 4              # 0: no lazy regularisation (regularise every step)
    d_reg_interval: int = 16
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    ada_target: float | None = 0.6       # None: fixed p (config.ada.p)
    ada_interval: int = 4
    ada_kimg: float = 500.0
    freeze_d: int = 0                    # D blocks (from the highest resolution) that get no updates
    loss: losses.LossConfig = losses.LossConfig()


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


# --------------------------------------------------------------------------- optimisers

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
    counted from the highest resolution (b{R}, b{R/2}, ...; b4 is the epilogue)."""
    frozen = set()
    res = cfg.img_resolution
    for _ in range(freeze_d):
        if res < 4:
            break
        frozen.add(f'b{res}')
        res //= 2
    return {k: jax.tree_util.tree_map(lambda _: k not in frozen, v) for k, v in d_params.items()}


@functools.lru_cache(maxsize=16)
def _init_fn(cfg: networks.NetworkConfig) -> Callable[[jax.Array, jax.Array], tuple[dict, dict]]:
    """The jitted initialiser of one config, built once per process: a resumed run initialises a
    template state and a fresh one its networks, and compiling this costs seconds on a CPU."""

    @jax.jit
    def run(k_g: jax.Array, k_d: jax.Array) -> tuple[dict, dict]:
        z = jnp.zeros((1, cfg.z_dim))
        img = jnp.zeros((1, cfg.img_resolution, cfg.img_resolution, cfg.img_channels))
        c = jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None
        k1, k2 = jax.random.split(k_g)
        g = networks.Generator(cfg).init({'params': k1, 'noise': k2}, z, c)
        d = networks.Discriminator(cfg).init({'params': k_d}, img, c)
        return g, d

    return run


def init_networks(cfg: networks.NetworkConfig, key: jax.Array) -> tuple[dict, dict]:
    """(G variables, D variables) with the reference initialisation, same draws as
    `networks.init_generator` / `init_discriminator`, but jitted (eager Flax init is slow on CPU)."""
    k_g, k_d = jax.random.split(key)
    g, d = _init_fn(cfg)(k_g, k_d)
    to_np = functools.partial(jax.tree_util.tree_map, np.asarray)
    return to_np(flax.core.unfreeze(g)), to_np(flax.core.unfreeze(d))


def init_state(cfg: networks.NetworkConfig, tc: TrainConfig, key: jax.Array, g_vars: dict | None = None,
               d_vars: dict | None = None, ema_vars: dict | None = None, ada_p: float = 0.0) -> TrainState:
    """Fresh state (reference init) or one built from given variables (transfer learning)."""
    k_net, k_rng = jax.random.split(key)
    if g_vars is None or d_vars is None:
        g_init, d_init = init_networks(cfg, k_net)
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


# --------------------------------------------------------------------------- helpers

def _all_finite(*trees: Any) -> jax.Array:
    leaves = [x for t in trees for x in jax.tree_util.tree_leaves(t)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _ema_beta(tc: TrainConfig, step: jax.Array) -> jax.Array:
    """Reference: ema_nimg = min(ema_kimg*1000, cur_nimg*rampup); beta = 0.5 ** (batch / ema_nimg)."""
    ema_nimg = jnp.asarray(tc.ema_kimg * 1000.0, jnp.float32)
    if tc.ema_rampup is not None:
        ema_nimg = jnp.minimum(ema_nimg, step.astype(jnp.float32) * tc.batch * tc.ema_rampup)
    return jnp.power(0.5, tc.batch / jnp.maximum(ema_nimg, 1e-8))


def _update_w_avg(cfg: networks.NetworkConfig, buffers: dict, w_mean: jax.Array, axis_name: str | None) -> dict:
    """The mapping's w_avg tracking (reference: w_avg = lerp(batch mean, w_avg, beta)) with the global mean."""
    if cfg.w_avg_beta is None or 'mapping' not in buffers:
        return buffers
    w_mean = lax.pmean(w_mean, axis_name) if axis_name else w_mean
    old = buffers['mapping']['w_avg']
    new = w_mean + (old - w_mean) * cfg.w_avg_beta
    return {**buffers, 'mapping': {**buffers['mapping'], 'w_avg': new}}


class Trainer:
    """Builds and holds the jitted (pmapped) phase functions for one (network config, train config).

    `step(state, batch)` runs one full training step on a replicated state; `batch` is
    {'image': uint8 [n_dev, b, R, R, C], 'label': float32 [n_dev, b, c_dim]} (per-process, sharded by
    the leading axis). Returns (state, metrics, ok) with metrics/ok still on the devices.
    """

    def __init__(self, cfg: networks.NetworkConfig, tc: TrainConfig, devices: list | None = None) -> None:
        self.cfg, self.tc = cfg, tc
        self.devices = devices or jax.local_devices()
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
        pm = functools.partial(jax.pmap, axis_name=AXIS, devices=self.devices)
        self.p_g_main = pm(functools.partial(self.g_main, axis_name=AXIS))
        self.p_g_reg = pm(functools.partial(self.g_reg, axis_name=AXIS))
        self.p_d_main = pm(functools.partial(self.d_main, axis_name=AXIS, r1=not tc.d_reg_interval))
        self.p_d_reg = pm(functools.partial(self.d_reg, axis_name=AXIS))
        self.p_finish = pm(functools.partial(self.finish, axis_name=AXIS))

    # ---- inputs

    def _keys(self, state: TrainState, phase: str, axis_name: str | None) -> jax.Array:
        """[n_chunks] keys: fold_in(fold_in(fold_in(rng, step), phase), global chunk index)."""
        k = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), _PHASE_ID[phase])
        dev = lax.axis_index(axis_name) if axis_name else 0
        idx = dev * self.n_chunks + jnp.arange(self.n_chunks)
        return jax.vmap(lambda i: jax.random.fold_in(k, i))(idx)

    def _chunks(self, x: jax.Array) -> jax.Array:
        return x.reshape((self.n_chunks, self.chunk) + x.shape[1:])

    def _latents(self, keys: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(z [n, m, z_dim], generator labels [n, m, c_dim], remaining keys [n])."""
        kk = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
        z = jax.vmap(lambda k: jax.random.normal(k, (self.chunk, self.cfg.z_dim)))(kk[:, 0])
        if self.cfg.c_dim:  # reference draws labels of random dataset items: here a shuffle of the real labels
            c = jax.vmap(lambda k, l: jax.random.permutation(k, l))(kk[:, 1], labels)
        else:
            c = labels
        return z, c, kk[:, 2]

    def _real(self, batch: dict) -> tuple[jax.Array, jax.Array]:
        img = batch['image'].astype(jnp.float32) / 127.5 - 1.0
        labels = batch.get('label')
        if labels is None:
            labels = jnp.zeros((img.shape[0], self.cfg.c_dim), jnp.float32)
        return self._chunks(img), self._chunks(labels.astype(jnp.float32))

    def _apply(self, tx: optax.GradientTransformation, params: Any, opt: Any, grads: Any,
               mask: Any | None = None) -> tuple[Any, Any]:
        if mask is not None:
            grads = jax.tree_util.tree_map(lambda g, m: g if m else jnp.zeros_like(g), grads, mask)
        updates, opt = tx.update(grads, opt, params)
        if mask is not None:
            updates = jax.tree_util.tree_map(lambda u, m: u if m else jnp.zeros_like(u), updates, mask)
        return optax.apply_updates(params, updates), opt

    # ---- phases (per device; `axis_name` None = single device without pmap)

    def g_main(self, state: TrainState, batch: dict, axis_name: str | None = None) -> tuple[TrainState, dict, jax.Array]:
        """Gmain: non-saturating G loss; Adam step on G; w_avg update."""
        _, labels = self._real(batch)
        z, c, keys = self._latents(self._keys(state, 'Gmain', axis_name), labels)
        grad_fn = jax.value_and_grad(losses.g_main_loss, has_aux=True)
        (loss, aux), grads = grad_fn(state.g_params, state.g_buffers, state.d_params, z, c, keys, state.ada_p,
                                     self.cfg, self.tc.loss)
        grads, loss = self._pmean((grads, loss), axis_name)
        g_params, g_opt = self._apply(self.g_tx, state.g_params, state.g_opt, grads)
        buffers = _update_w_avg(self.cfg, state.g_buffers, aux['w_mean'], axis_name)
        metrics = {'Loss/G/loss': loss, 'Loss/scores/fake_G': self._pmean(aux['fake_logits'], axis_name)}
        return (state.replace(g_params=g_params, g_opt=g_opt, g_buffers=buffers), metrics,
                _all_finite(loss, grads))

    def g_reg(self, state: TrainState, batch: dict, axis_name: str | None = None) -> tuple[TrainState, dict, jax.Array]:
        """Greg: path-length regularisation (loss x G_reg_interval); pl_mean EMA."""
        _, labels = self._real(batch)
        z, c, keys = self._latents(self._keys(state, 'Greg', axis_name), labels)
        gain = self.tc.g_reg_interval or 1
        grad_fn = jax.value_and_grad(
            lambda p: (lambda l, a: (l * gain, a))(*losses.g_pl_loss(
                p, state.g_buffers, state.pl_mean, z, c, keys, self.cfg, self.tc.loss, axis_name)), has_aux=True)
        (loss, aux), grads = grad_fn(state.g_params)
        grads, loss = self._pmean((grads, loss), axis_name)
        g_params, g_opt = self._apply(self.g_tx, state.g_params, state.g_opt, grads)
        buffers = _update_w_avg(self.cfg, state.g_buffers, aux['w_mean'], axis_name)
        metrics = {'Loss/G/reg': loss / gain, 'Loss/pl_penalty': self._pmean(aux['pl_penalty'], axis_name),
                   'Loss/pl_length': aux['pl_length'], 'Loss/pl_mean': aux['pl_mean']}
        return (state.replace(g_params=g_params, g_opt=g_opt, g_buffers=buffers, pl_mean=aux['pl_mean']),
                metrics, _all_finite(loss, grads))

    def d_main(self, state: TrainState, batch: dict, axis_name: str | None = None,
               r1: bool = False) -> tuple[TrainState, dict, jax.Array]:
        """Dmain: D loss on G(z) and reals (+ R1 when there is no lazy D regularisation); w_avg update."""
        real, labels = self._real(batch)
        z, c, keys = self._latents(self._keys(state, 'Dmain', axis_name), labels)
        grad_fn = jax.value_and_grad(losses.d_main_loss, has_aux=True)
        (loss, aux), grads = grad_fn(state.d_params, state.g_vars, real, labels, z, c, keys, state.ada_p,
                                     self.cfg, self.tc.loss, r1=r1)
        grads, loss = self._pmean((grads, loss), axis_name)
        mask = freeze_mask(self.cfg, state.d_params, self.tc.freeze_d) if self.tc.freeze_d else None
        d_params, d_opt = self._apply(self.d_tx, state.d_params, state.d_opt, grads, mask)
        buffers = _update_w_avg(self.cfg, state.g_buffers, aux['w_mean'], axis_name)
        sign_sum, count = self._psum((aux['real_sign_sum'], aux['real_count']), axis_name)
        metrics = {'Loss/D/loss': loss, 'Loss/scores/fake': self._pmean(aux['fake_logits'], axis_name),
                   'Loss/scores/real': self._pmean(aux['real_logits'], axis_name)}
        if r1:
            metrics['Loss/r1_penalty'] = self._pmean(aux['r1_penalty'], axis_name)
        state = state.replace(d_params=d_params, d_opt=d_opt, g_buffers=buffers,
                              ada_sum=state.ada_sum + sign_sum, ada_count=state.ada_count + count)
        return state, metrics, _all_finite(loss, grads)

    def d_reg(self, state: TrainState, batch: dict, axis_name: str | None = None) -> tuple[TrainState, dict, jax.Array]:
        """Dreg: R1 on reals (loss x D_reg_interval)."""
        real, labels = self._real(batch)
        keys = self._keys(state, 'Dreg', axis_name)
        gain = self.tc.d_reg_interval or 1
        grad_fn = jax.value_and_grad(losses.d_r1_loss, has_aux=True)
        (loss, aux), grads = grad_fn(state.d_params, real, labels, keys, state.ada_p, self.cfg, self.tc.loss)
        grads = jax.tree_util.tree_map(lambda g: g * gain, grads)
        grads, loss = self._pmean((grads, loss), axis_name)
        mask = freeze_mask(self.cfg, state.d_params, self.tc.freeze_d) if self.tc.freeze_d else None
        d_params, d_opt = self._apply(self.d_tx, state.d_params, state.d_opt, grads, mask)
        sign_sum, count = self._psum((aux['real_sign_sum'], aux['real_count']), axis_name)
        metrics = {'Loss/D/reg': loss, 'Loss/r1_penalty': self._pmean(aux['r1_penalty'], axis_name)}
        state = state.replace(d_params=d_params, d_opt=d_opt,
                              ada_sum=state.ada_sum + sign_sum, ada_count=state.ada_count + count)
        return state, metrics, _all_finite(loss, grads)

    def finish(self, old: TrainState, new: TrainState, ok: jax.Array, axis_name: str | None = None
               ) -> tuple[TrainState, dict]:
        """G EMA, ADA p update, step + 1; the NaN guard keeps `old` (but advances the step) when not ok."""
        tc = self.tc
        beta = _ema_beta(tc, new.step)
        ema_params = jax.tree_util.tree_map(lambda p, e: p + (e - p) * beta, new.g_params, new.ema_params)
        new = new.replace(ema_params=ema_params, ema_buffers=new.g_buffers)
        kept = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        step = old.step + 1
        if tc.ada_target is not None:
            due = (step % tc.ada_interval) == 0
            mean_sign = kept.ada_sum / jnp.maximum(kept.ada_count, 1.0)
            p_new = aug.ada_update(kept.ada_p, mean_sign, batch_images=tc.batch, interval=tc.ada_interval,
                                   target=tc.ada_target, speed_kimg=tc.ada_kimg)
            kept = kept.replace(ada_p=jnp.where(due & (kept.ada_count > 0), p_new, kept.ada_p),
                                ada_sum=jnp.where(due, 0.0, kept.ada_sum),
                                ada_count=jnp.where(due, 0.0, kept.ada_count))
        kept = kept.replace(step=step, rng=old.rng)
        return kept, {'Progress/augment': kept.ada_p, 'Progress/ema_beta': beta}

    # ---- driver

    @staticmethod
    def _pmean(x: Any, axis_name: str | None) -> Any:
        return lax.pmean(x, axis_name) if axis_name else x

    @staticmethod
    def _psum(x: Any, axis_name: str | None) -> Any:
        return lax.psum(x, axis_name) if axis_name else x

    def phases(self, step: int) -> list[str]:
        """The reference's phases due at (0-based) step `step`."""
        tc = self.tc
        out = ['Gmain']
        if tc.g_reg_interval and tc.loss.pl_weight and step % tc.g_reg_interval == 0:
            out.append('Greg')
        out.append('Dmain')
        if tc.d_reg_interval and tc.loss.r1_gamma and step % tc.d_reg_interval == 0:
            out.append('Dreg')
        return out

    def step(self, state: TrainState, batch: dict, step: int) -> tuple[TrainState, dict, jax.Array]:
        """One training step on a replicated state. `step` is the host copy of state.step (chooses phases)."""
        fns = {'Gmain': self.p_g_main, 'Greg': self.p_g_reg, 'Dmain': self.p_d_main, 'Dreg': self.p_d_reg}
        new, metrics, oks = state, {}, []
        for name in self.phases(step):
            new, m, ok = fns[name](new, batch)
            metrics.update(m)
            oks.append(ok)
        ok = oks[0]
        for o in oks[1:]:
            ok = ok & o
        new, m = self.p_finish(state, new, ok)
        metrics.update(m)
        return new, metrics, ok

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


_TRAINERS: dict[tuple, Trainer] = {}


def get_trainer(cfg: networks.NetworkConfig, tc: TrainConfig, devices: list | None = None) -> Trainer:
    """A cached Trainer per (configs, devices): a resumed or repeated run in one process reuses the compiled steps."""
    devices = list(devices or jax.local_devices())
    key = (cfg, tc, tuple(d.id for d in devices))
    if key not in _TRAINERS:
        _TRAINERS[key] = Trainer(cfg, tc, devices)
    return _TRAINERS[key]


def train_steps(trainer: Trainer, state: TrainState, batches: Iterable[dict], start: int = 0
                ) -> tuple[TrainState, list[dict]]:
    """Run steps over an iterable of per-process batches (replicated state in and out); metrics on host."""
    out = []
    for i, batch in enumerate(batches):
        state, metrics, ok = trainer.step(state, trainer.shard(batch), start + i)
        out.append({**jax.device_get(trainer.unreplicate(metrics)), 'ok': bool(trainer.unreplicate(ok))})
    return state, out
