"""The training loop: `train_and_evaluate(config, workdir)` (what `run_train.py` calls).

Workdir layout (readable by `stylegan-sample --checkpoint WORKDIR`, `stylegan-metrics`, and as a
transfer source):

    WORKDIR/network.json               network config (+ the training config, for the record)
    WORKDIR/checkpoints/<step>/        orbax, atomic, last `log.keep_checkpoints` kept:
        G_ema/, G/, D/                 {'params', 'buffers'} trees (as a converted checkpoint)
        state/                         optimizer states, pl_mean, ADA p and accumulators, step, rng
        meta/                          JSON: kimg, step (= data position), batch, seed
    WORKDIR/samples/grid_kimgXXXXX.png G_ema on fixed seeds (log.grid_seeds), noise const, psi 1
    WORKDIR/loss_curves.png            losses / regularisers / ADA p against kimg
    WORKDIR/events.out.tfevents.*      TensorBoard scalars (clu metric writers)

Resume: when WORKDIR/checkpoints has a finished step, everything is restored (parameters, EMA,
optimizers, ADA p, pl_mean, RNG, data position) and `resumed from kimg X` is printed; the run then
continues to config.train.total_kimg exactly as an uninterrupted run would.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax import checkpoint as ckpt_lib
from stylegan_jax import networks
from stylegan_jax.train import augment as aug
from stylegan_jax.train import losses
from stylegan_jax.train import step as step_lib


class TrainingError(RuntimeError):
    """Training cannot go on (bad config, diverged, incompatible workdir); the message says why."""


# --------------------------------------------------------------------------- config

def default_config() -> Any:
    """The full config schema with the reference's defaults (configs/*.py start from this).

    -1 means the reference's 'auto' value: train.r1_gamma = 0.0002 * res^2 / batch,
    train.ema_kimg = batch * 10 / 32. 0 switches a feature off (ema_rampup, batch_gpu = per-device
    batch, log.fid_kimg).
    """
    import ml_collections
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = ml_collections.ConfigDict(dict(
        z_dim=512, w_dim=512, c_dim=0, img_resolution=256, img_channels=3, mapping_layers=2,
        mapping_lr_multiplier=0.01, w_avg_beta=0.995, channel_base=16384, channel_max=512, num_fp16_res=0,
        mixed_dtype='bfloat16', conv_clamp=256.0, mbstd_group_size=4, mbstd_num_channels=1, d_mapping_layers=8))
    c.data = ml_collections.ConfigDict(dict(
        source='tfds', path='', resolution=256, xflip=True, photo_ratio=ml_collections.FieldReference(None, float),
        num_images=256, shuffle_buffer=10_000))
    c.train = ml_collections.ConfigDict(dict(
        batch=32, batch_gpu=0, total_kimg=25_000.0, g_lr=0.0025, d_lr=0.0025, r1_gamma=-1.0, pl_weight=2.0,
        pl_decay=0.01, pl_batch_shrink=2, style_mixing_prob=0.9, g_reg_interval=4, d_reg_interval=16,
        ema_kimg=-1.0, ema_rampup=0.05, freeze_d=0, max_bad_steps=10))
    c.ada = ml_collections.ConfigDict(dict(mode='adaptive', augpipe='bgc', p=0.0, target=0.6, interval=4, kimg=500.0))
    c.log = ml_collections.ConfigDict(dict(
        log_every_steps=50, checkpoint_kimg=200.0, keep_checkpoints=3, grid_kimg=200.0, grid_seeds='0-31',
        fid_kimg=0.0, fid_real='', fid_num_fake=10_000, fid_batch=64, inception_weights=''))
    c.transfer = ml_collections.ConfigDict(dict(path=''))
    return c



def sibling_config(config_file: str | os.PathLike, name: str) -> Any:
    """`get_config()` of configs/NAME.py next to `config_file`: lets one config file build on another
    (config files are loaded by path, not imported as a package)."""
    import importlib.util
    path = pathlib.Path(config_file).with_name(f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_stylegan_jax_config_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def network_config(config: Any) -> networks.NetworkConfig:
    """NetworkConfig from config.model (unknown keys are an error); the resolution comes from config.data."""
    d = dict(config.model.to_dict() if hasattr(config.model, 'to_dict') else config.model)
    d.setdefault('img_resolution', int(config.data.resolution))
    if int(d['img_resolution']) != int(config.data.resolution):
        raise TrainingError(f'model.img_resolution {d["img_resolution"]} != data.resolution {config.data.resolution}')
    for k in ('conv_clamp', 'mbstd_group_size', 'd_cmap_dim', 'd_num_fp16_res'):
        if k in d and d[k] is not None and d[k] <= 0:  # <= 0 on the command line means "None"
            d[k] = None
    try:
        return networks.NetworkConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise TrainingError(f'config.model: {e}') from None


def train_config(config: Any, cfg: networks.NetworkConfig, process_count: int = 1) -> step_lib.TrainConfig:
    """TrainConfig from config.train / config.ada, resolving the reference's 'auto' values (-1)."""
    t, a = config.train, config.ada
    batch = int(t.batch)
    r1 = float(t.r1_gamma)
    if r1 < 0:
        r1 = losses.auto_r1_gamma(cfg.img_resolution, batch)
    ema_kimg = float(t.ema_kimg)
    if ema_kimg < 0:
        ema_kimg = batch * 10 / 32
    mode = str(a.mode)
    if mode not in ('adaptive', 'fixed', 'off'):
        raise TrainingError(f"ada.mode must be 'adaptive', 'fixed' or 'off', got {mode!r}")
    spec = None if mode == 'off' or not a.augpipe else aug.AugmentSpec.preset(str(a.augpipe))
    rampup = float(t.ema_rampup) if t.ema_rampup else None
    lc = losses.LossConfig(r1_gamma=r1, pl_weight=float(t.pl_weight), pl_decay=float(t.pl_decay),
                           pl_batch_shrink=int(t.pl_batch_shrink), style_mixing_prob=float(t.style_mixing_prob),
                           augment_spec=spec)
    return step_lib.TrainConfig(
        batch=batch, batch_gpu=int(t.batch_gpu) or None, g_lr=float(t.g_lr), d_lr=float(t.d_lr),
        g_reg_interval=int(t.g_reg_interval), d_reg_interval=int(t.d_reg_interval), ema_kimg=ema_kimg,
        ema_rampup=rampup, ada_target=float(a.target) if mode == 'adaptive' and spec is not None else None,
        ada_interval=int(a.interval), ada_kimg=float(a.kimg), freeze_d=int(t.freeze_d), loss=lc)


# --------------------------------------------------------------------------- checkpoints

def _manager(workdir: pathlib.Path, keep: int) -> Any:
    import orbax.checkpoint as ocp
    options = ocp.CheckpointManagerOptions(max_to_keep=max(1, keep), create=True)
    return ocp.CheckpointManager(workdir / 'checkpoints', options=options,
                                 item_names=('G_ema', 'G', 'D', 'state', 'meta'))


def _np(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: np.asarray(x), tree)


def _state_items(state: step_lib.TrainState) -> dict[str, Any]:
    """Host state -> the checkpoint items (nested dicts of numpy arrays)."""
    import flax
    s = _np(state)
    return {
        'G_ema': {'params': s.ema_params, 'buffers': s.ema_buffers},
        'G': {'params': s.g_params, 'buffers': s.g_buffers},
        'D': {'params': s.d_params},
        'state': {'g_opt': flax.serialization.to_state_dict(s.g_opt),
                  'd_opt': flax.serialization.to_state_dict(s.d_opt),
                  'pl_mean': s.pl_mean, 'ada_p': s.ada_p, 'ada_sum': s.ada_sum, 'ada_count': s.ada_count,
                  'step': s.step, 'rng': s.rng},
    }


def save_checkpoint(manager: Any, state: step_lib.TrainState, meta: dict[str, Any]) -> None:
    """Write one atomic step directory (orbax writes to a temporary name and renames when complete)."""
    import orbax.checkpoint as ocp
    items = _state_items(state)
    args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
    manager.save(int(meta['step']), args=ocp.args.Composite(**args, meta=ocp.args.JsonSave(meta)), force=True)
    manager.wait_until_finished()


def restore_checkpoint(manager: Any, template: step_lib.TrainState, step: int | None = None
                       ) -> tuple[step_lib.TrainState, dict[str, Any]]:
    """(state, meta) of a step (default: the latest), shaped like `template` (a freshly built state)."""
    import flax
    import orbax.checkpoint as ocp
    step = manager.latest_step() if step is None else step
    names = ('G_ema', 'G', 'D', 'state')
    try:
        r = manager.restore(step, args=ocp.args.Composite(**{k: ocp.args.StandardRestore() for k in names},
                                                            meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for damaged or foreign directories
        raise TrainingError(f'{manager.directory}/{step}: cannot restore checkpoint '
                            f'({type(e).__name__}: {str(e).splitlines()[0][:200]})') from None
    st = r['state']
    as_j = lambda t: jax.tree_util.tree_map(jnp.asarray, t)  # noqa: E731
    state = template.replace(
        g_params=as_j(r['G']['params']), g_buffers=as_j(r['G'].get('buffers', {})),
        d_params=as_j(r['D']['params']), ema_params=as_j(r['G_ema']['params']),
        ema_buffers=as_j(r['G_ema'].get('buffers', {})),
        g_opt=flax.serialization.from_state_dict(template.g_opt, as_j(st['g_opt'])),
        d_opt=flax.serialization.from_state_dict(template.d_opt, as_j(st['d_opt'])),
        pl_mean=jnp.asarray(st['pl_mean'], jnp.float32), ada_p=jnp.asarray(st['ada_p'], jnp.float32),
        ada_sum=jnp.asarray(st['ada_sum'], jnp.float32), ada_count=jnp.asarray(st['ada_count'], jnp.float32),
        step=jnp.asarray(st['step'], jnp.int32), rng=jnp.asarray(st['rng'], template.rng.dtype))
    mismatch = [k for k in ('g_params', 'd_params') if jax.tree_util.tree_structure(getattr(state, k))
                != jax.tree_util.tree_structure(getattr(template, k))
                or any(a.shape != b.shape for a, b in zip(jax.tree_util.tree_leaves(getattr(state, k)),
                                                           jax.tree_util.tree_leaves(getattr(template, k))))]
    if mismatch:
        raise TrainingError(f'{manager.directory}/{step}: checkpoint does not match the configured networks '
                            f'({", ".join(mismatch)} differ); use a new --workdir or the same config')
    return state, dict(r['meta'])


# --------------------------------------------------------------------------- monitoring helpers

@functools.lru_cache(maxsize=8)
def _grid_fn(cfg: networks.NetworkConfig) -> Any:
    """Jitted (G variables, z, c) -> uint8 images, built once per config and process (a resumed
    run in the same process does not compile it again)."""
    from stylegan_jax.sample import to_uint8
    gen = networks.Generator(cfg)

    def run(variables: dict, z: jax.Array, c: jax.Array) -> jax.Array:
        img = gen.apply(variables, z, c if cfg.c_dim else None, 1.0, None, 'const')
        return to_uint8(img)

    return jax.jit(run)


class GridSampler:
    """G_ema on fixed seeds -> grid PNGs (noise const, psi 1), one jitted function."""

    def __init__(self, cfg: networks.NetworkConfig, seeds: list[int]) -> None:
        from stylegan_jax.sample import z_from_seeds
        self.cfg = cfg
        self.z = z_from_seeds(seeds, cfg.z_dim)
        self.c = np.zeros((len(seeds), cfg.c_dim), np.float32)
        if cfg.c_dim:
            self.c[np.arange(len(seeds)), np.arange(len(seeds)) % cfg.c_dim] = 1
        self._fn = _grid_fn(cfg)

    def save(self, variables: dict, path: pathlib.Path) -> pathlib.Path:
        from stylegan_jax.sample import image_grid
        from PIL import Image
        imgs = np.asarray(self._fn(variables, self.z, self.c))
        if imgs.shape[-1] == 1:
            imgs = imgs[..., 0]
        grid = image_grid(imgs if imgs.ndim == 4 else imgs[..., None])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix('.tmp.png')
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(tmp)
        os.replace(tmp, path)
        return path


_CURVES = (('Loss/G/loss', 'Loss/D/loss'), ('Loss/scores/real', 'Loss/scores/fake'),
           ('Loss/r1_penalty', 'Loss/pl_penalty'), ('Progress/augment',))


def plot_loss_curves(history: list[dict[str, float]], path: pathlib.Path) -> None:
    """The logged scalars against kimg, one panel per group, to a PNG (matplotlib Agg)."""
    if not history:
        return
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(_CURVES), figsize=(4 * len(_CURVES), 3.2))
    kimg = [h['Progress/kimg'] for h in history]
    for ax, names in zip(axes, _CURVES):
        for name in names:
            pts = [(k, h[name]) for k, h in zip(kimg, history) if name in h]
            if pts:
                ax.plot(*zip(*pts), label=name.split('/', 1)[1])
        ax.set_xlabel('kimg')
        if ax.get_legend_handles_labels()[0]:  # a panel without data (e.g. no ADA) gets no empty legend
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix('.tmp.png')
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def _make_evaluator(config: Any, workdir: pathlib.Path) -> tuple[Any, str]:
    """(Evaluator or None, reason it is None)."""
    log = config.log
    if not int(log.fid_kimg):
        return None, 'log.fid_kimg is 0'
    try:
        from stylegan_jax.metrics.evaluator import Evaluator
    except ImportError as e:
        return None, f'metrics package unavailable ({e})'
    real = str(log.fid_real or '')
    if not real:
        src = str(config.data.source)
        real = str(config.data.path or (workdir / 'demo_data' if src == 'demo' else ''))
    if not real:
        return None, 'no real image set (set log.fid_real)'
    try:
        return Evaluator(real, inception_weights=str(log.inception_weights) or None, num_fake=int(log.fid_num_fake),
                         batch=int(log.fid_batch)), ''
    except Exception as e:  # MetricsError (weights not available, bad real set) and I/O errors
        return None, f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'


def _info(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- the loop

def _initial_state(config: Any, cfg: networks.NetworkConfig, tc: step_lib.TrainConfig) -> step_lib.TrainState:
    key = jax.random.PRNGKey(int(config.seed))
    p0 = float(config.ada.p)
    path = str(config.transfer.path or '')
    if not path:
        return step_lib.init_state(cfg, tc, key, ada_p=p0)
    from stylegan_jax.train import transfer
    try:
        src_cfg, src = transfer.load_transfer_source(path)
    except ValueError as e:
        raise TrainingError(f'transfer.path: {e}') from None
    g_init, d_init = step_lib.init_networks(cfg, jax.random.fold_in(key, 1))
    dst = {'G': g_init, 'G_ema': g_init, 'D': d_init}
    try:
        out, rows = transfer.transfer_variables(src, src_cfg, dst, cfg)
    except ValueError as e:
        raise TrainingError(f'transfer from {path}: {e}') from None
    _info(transfer.format_table(rows))
    return step_lib.init_state(cfg, tc, key, g_vars=out['G'], d_vars=out['D'], ema_vars=out['G_ema'], ada_p=p0)


def _check_network_json(workdir: pathlib.Path, cfg: networks.NetworkConfig) -> None:
    if not (workdir / ckpt_lib.NETWORK_JSON).is_file():
        return
    try:
        old, _ = ckpt_lib.read_network_json(workdir)
    except ckpt_lib.CheckpointError as e:
        raise TrainingError(str(e)) from None
    if old != cfg:
        diff = [f'{k}: {getattr(old, k)} -> {getattr(cfg, k)}' for k in dataclasses.asdict(cfg)
                if getattr(old, k) != getattr(cfg, k)]
        raise TrainingError(f'{workdir}: holds a run with another network config ({"; ".join(diff)}); '
                            'use a new --workdir')


def _read_history(path: pathlib.Path, step: int) -> list[dict[str, Any]]:
    """The logged scalars up to `step` (the restored checkpoint). Entries after it were logged by the
    interrupted run and will be logged again, so the file is rewritten without them (and without a
    line cut off by a crash); otherwise the file and the curves would hold those steps twice."""
    if not path.is_file():
        return []
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    history = []
    for line in lines:
        try:
            h = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(h, dict) and h.get('step', 0) <= step:
            history.append(h)
    if len(history) != len(lines) and jax.process_index() == 0:
        tmp = path.with_suffix('.tmp')
        tmp.write_text(''.join(json.dumps(h) + '\n' for h in history))
        os.replace(tmp, path)
    return history


def train_and_evaluate(config: Any, workdir: str | os.PathLike) -> step_lib.TrainState:
    """Train (or resume) per `config` in `workdir`; returns the final host state."""
    workdir = pathlib.Path(workdir).absolute()
    cfg = network_config(config)
    tc = train_config(config, cfg, jax.process_count())
    trainer = step_lib.get_trainer(cfg, tc)
    _check_network_json(workdir, cfg)
    workdir.mkdir(parents=True, exist_ok=True)  # after the checks: a rejected config leaves no empty workdir
    # Heavy imports (clu loads TensorFlow, which logs to stderr) only after the config checks, so a
    # bad setting is reported as the single error line.
    from clu import metric_writers
    from tqdm import tqdm

    from stylegan_jax.sample import parse_seeds
    from stylegan_jax.train import input_pipeline

    batch = tc.batch
    total_steps = max(1, math.ceil(float(config.train.total_kimg) * 1000 / batch))
    kimg_of = lambda s: s * batch / 1000  # noqa: E731

    manager = _manager(workdir, int(config.log.keep_checkpoints))
    template = step_lib.init_state(cfg, tc, jax.random.PRNGKey(int(config.seed)), ada_p=float(config.ada.p)) \
        if manager.latest_step() is not None else None
    if template is not None:
        state, meta = restore_checkpoint(manager, template)
        if int(meta.get('batch', batch)) != batch:
            raise TrainingError(f'{workdir}: checkpoint was trained with batch {meta["batch"]}, config says {batch}')
        _info(f'resumed from kimg {kimg_of(int(state.step)):.1f} (step {int(state.step)})')
    else:
        state = _initial_state(config, cfg, tc)
    step = int(state.step)
    if jax.process_index() == 0:
        ckpt_lib.write_network_json(workdir, cfg, {
            'source': 'stylegan-jax run_train.py', 'networks': list(ckpt_lib.NETWORK_ITEMS),
            'training': json.loads(config.to_json_best_effort()) if hasattr(config, 'to_json_best_effort') else {}})

    _info(f'networks: G {networks.param_count(state.g_params):,} params, D {networks.param_count(state.d_params):,} '
          f'params; {cfg.img_resolution}x{cfg.img_resolution}, batch {batch} on {jax.device_count()} device(s) '
          f'({trainer.per_device}/device, chunks of {trainer.chunk}); r1_gamma {tc.loss.r1_gamma:g}, '
          f'ema_kimg {tc.ema_kimg:g}, ADA {"off" if tc.loss.augment_spec is None else config.ada.mode}')

    data = input_pipeline.create_input_iter(config.data, batch, int(config.seed), start_step=step,
                                            c_dim=cfg.c_dim, workdir=str(workdir))
    device_batches = trainer.prefetch(data)
    writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
    grid = GridSampler(cfg, parse_seeds(str(config.log.grid_seeds)))
    evaluator, why = _make_evaluator(config, workdir)
    if evaluator is None:
        _info(f'FID skipped: {why}')

    log_every = max(1, int(config.log.log_every_steps))
    ckpt_every = max(1, round(float(config.log.checkpoint_kimg) * 1000 / batch))
    grid_every = max(1, round(float(config.log.grid_kimg) * 1000 / batch))
    fid_every = max(1, round(float(config.log.fid_kimg or 0) * 1000 / batch)) if evaluator else 0
    max_bad = max(1, int(config.train.max_bad_steps))
    history_path = workdir / 'loss_history.jsonl'
    history = _read_history(history_path, step)

    def meta() -> dict[str, Any]:
        return {'step': step, 'kimg': kimg_of(step), 'batch': batch, 'seed': int(config.seed),
                'data_position': step, 'time': time.time()}

    def save_grid() -> None:
        path = workdir / 'samples' / f'grid_kimg{int(round(kimg_of(step))):05d}.png'
        grid.save(trainer.unreplicate(rstate.ema_vars), path)

    rstate = trainer.replicate(state)
    if jax.process_index() == 0 and step == 0:
        save_grid()
    bar = tqdm(total=round(kimg_of(total_steps), 3), initial=round(kimg_of(step), 3), unit='kimg', file=sys.stderr,
               dynamic_ncols=True, bar_format='{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]')
    pending: list[dict] = []
    prev_ok = None
    bad = 0
    t_last, step_last = time.time(), step
    while step < total_steps:
        rstate, metrics, ok = trainer.step(rstate, next(device_batches), step)
        step += 1
        pending.append(metrics)
        # NaN guard, read one step late so the host does not wait for the device every step.
        if prev_ok is not None:
            if not bool(trainer.unreplicate(prev_ok)):
                bad += 1
                # prev_ok belongs to the step before the one just run: 0-based index step - 2.
                _info(f'non-finite loss or gradient at step {step - 2}: step skipped ({bad} in a row)')
                if bad >= max_bad:
                    last = manager.latest_step()
                    raise TrainingError(f'stopped after {bad} consecutive non-finite steps; last good checkpoint: '
                                        f'{workdir / "checkpoints" / str(last) if last is not None else "none"}')
            else:
                bad = 0
        prev_ok = ok
        bar.n = round(kimg_of(step), 3)  # set, not accumulated: float sums overshoot the total
        bar.update(0)
        done = step >= total_steps
        if step % log_every == 0 or done:
            vals = jax.device_get([trainer.unreplicate(m) for m in pending])
            avg: dict[str, float] = {}
            for name in {k for v in vals for k in v}:
                xs = [float(v[name]) for v in vals if name in v]
                avg[name] = float(np.mean(xs))
            pending = []
            now = time.time()
            sec_per_kimg = (now - t_last) / max(1e-9, kimg_of(step - step_last))
            t_last, step_last = now, step
            avg.update({'Progress/kimg': kimg_of(step), 'Timing/sec_per_kimg': sec_per_kimg})
            writer.write_scalars(step, avg)
            history.append({'step': step, **avg})
            if jax.process_index() == 0:
                with open(history_path, 'a') as f:
                    f.write(json.dumps({'step': step, **avg}) + '\n')
            bar.set_postfix_str(f'{sec_per_kimg:.1f} sec/kimg, G {avg.get("Loss/G/loss", float("nan")):.3f}, '
                                f'D {avg.get("Loss/D/loss", float("nan")):.3f}, p {avg.get("Progress/augment", 0):.3f}')
        if step % ckpt_every == 0 or done:
            if not bool(trainer.unreplicate(ok)) and bad + 1 >= max_bad:
                continue  # about to stop on the guard: leave the last good checkpoint as it is
            host = jax.device_get(trainer.unreplicate(rstate))
            save_checkpoint(manager, host, meta())
            if jax.process_index() == 0:
                plot_loss_curves(history, workdir / 'loss_curves.png')
        if jax.process_index() == 0 and (step % grid_every == 0 or done):
            save_grid()
        if fid_every and (step % fid_every == 0 or done):
            vals = evaluator(cfg, trainer.unreplicate(rstate.ema_vars), jax.random.PRNGKey(step))
            writer.write_scalars(step, {f'Metrics/{k}': v for k, v in vals.items()})
            _info(f'kimg {kimg_of(step):.1f}: ' + ', '.join(f'{k} {v:.4g}' for k, v in vals.items()))
    bar.close()
    writer.flush()
    writer.close()
    if prev_ok is not None and not bool(trainer.unreplicate(prev_ok)):
        _info(f'non-finite loss or gradient at step {step - 1}: step skipped')
    _info(f'done: {kimg_of(step):.1f} kimg; checkpoints in {workdir / "checkpoints"}; '
          f'sample with: stylegan-sample --checkpoint {workdir} --seeds 0-15 --outdir OUT')
    return jax.device_get(trainer.unreplicate(rstate))
