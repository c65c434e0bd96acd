"""The training loop: `train_and_evaluate(config, workdir)` (what `run_train.py` calls).

It follows the reference's `training_loop.py`: initialise, load the training set, construct (or
resume, or transfer) the networks, distribute them over the devices, export the first sample grid,
initialise the logs, then train, with the maintenance (status, sample grid, network snapshot,
metrics, logs) at its intervals. Each of those jobs lives in its own module:

    run_config.py   config -> NetworkConfig / TrainConfig (the reference's automatic values)
    snapshots.py    WORKDIR/checkpoints/<step>/ (orbax) and which snapshots to keep
    grid.py         WORKDIR/samples/grid_kimgNNNNN.png
    history.py      WORKDIR/loss_history.jsonl, WORKDIR/metrics.jsonl (FID per snapshot)
    plots.py        WORKDIR/loss_curves.png
    transfer.py     starting from another network (transfer.path)
    step.py         the pmapped training step; input_pipeline.py the data

The workdir is readable by `stylegan-sample --checkpoint WORKDIR`, `stylegan-metrics` and as a
transfer source; it also holds network.json and TensorBoard events (events.out.tfevents.*).

Resume: when WORKDIR/checkpoints has a finished step, everything is restored (parameters, EMA,
optimizers, ADA p, pl_mean, RNG, data position) and `resumed from kimg X` is printed; the run then
continues to config.train.total_kimg exactly as an uninterrupted run would.

Multi-process (multi-host) runs: every process runs this function with the same config and workdir
(after `jax.distributed.initialize`); each reads its own shards of the data, the step's collectives
span all devices, and only process 0 writes files other than the orbax snapshots.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from typing import Any

import jax
import numpy as np

from stylegan_jax import checkpoint as ckpt_lib
from stylegan_jax import networks
from stylegan_jax.train import history, run_config, snapshots
from stylegan_jax.train import step as step_lib
from stylegan_jax.train.errors import TrainingError

__all__ = ['TrainingError', 'train_and_evaluate']


def _info(msg: str) -> None:
    if jax.process_index() == 0:
        print(msg, flush=True)


def _start_state(config: Any, cfg: networks.NetworkConfig, tc: step_lib.TrainConfig, manager: Any,
                 workdir: pathlib.Path) -> step_lib.TrainState:
    """The latest snapshot of this workdir (resume), else a network from transfer.path, else a fresh one."""
    from stylegan_jax.train import transfer
    key = jax.random.PRNGKey(int(config.seed))
    p0 = float(config.ada.p)
    if manager.latest_step() is not None:
        state, meta = snapshots.restore(manager, step_lib.init_state(cfg, tc, key, ada_p=p0))
        if int(meta.get('batch', tc.batch)) != tc.batch:
            raise TrainingError(f'{workdir}: checkpoint was trained with batch {meta["batch"]}, '
                                f'config says {tc.batch}')
        _info(f'resumed from kimg {int(state.step) * tc.batch / 1000:.1f} (step {int(state.step)})')
        return state
    if not run_config.transferring(config):
        return step_lib.init_state(cfg, tc, key, ada_p=p0)
    auto = run_config.auto_values(config, cfg.img_resolution, jax.device_count())
    notes = transfer.resume_notes(tc.ada_kimg, tc.ema_rampup, auto.automatic)
    try:
        state, table = transfer.initial_state(config, cfg, tc, key, notes)
    except ValueError as e:  # CheckpointError (bad source) and transfer_variables' refusals
        raise TrainingError(f'transfer.path: {e}') from None
    _info(table)
    return state


def _average(pending: list[dict]) -> dict[str, float]:
    """Mean of each metric over the steps since the last log line (a phase may not run every step)."""
    out: dict[str, list[float]] = {}
    for m in pending:
        for k, v in m.items():
            out.setdefault(k, []).append(float(v))
    return {k: float(np.mean(v)) for k, v in out.items()}


def train_and_evaluate(config: Any, workdir: str | os.PathLike) -> step_lib.TrainState:
    """Train (or resume) per `config` (configs/default.py's schema) in `workdir`; returns the final host state."""
    # Initialize: every config check before anything is written or the data is opened, so a bad
    # setting is reported as one error line and leaves no workdir behind.
    workdir = pathlib.Path(workdir).absolute()
    cfg = run_config.network_config(config)
    tc = run_config.train_config(config, cfg)
    trainer = step_lib.get_trainer(cfg, tc)
    snapshots.check_network_json(workdir, cfg)
    workdir.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    from stylegan_jax.metrics import evaluator as evaluator_lib
    from stylegan_jax.sample import parse_seeds
    from stylegan_jax.train import input_pipeline, plots, resources
    from stylegan_jax.train.events import EventWriter
    from stylegan_jax.train.grid import GridSampler
    from stylegan_jax.train.progress import Progress

    primary = jax.process_index() == 0
    batch = tc.batch
    total_steps = max(1, math.ceil(float(config.train.total_kimg) * 1000 / batch))
    kimg_of = lambda s: s * batch / 1000  # noqa: E731

    # Construct networks (resume / transfer / fresh).
    manager = snapshots.open_manager(workdir)
    state = _start_state(config, cfg, tc, manager, workdir)
    step = int(state.step)
    if primary:
        ckpt_lib.write_network_json(workdir, cfg, {
            'source': 'stylegan-jax run_train.py', 'networks': list(ckpt_lib.NETWORK_ITEMS),
            'training': json.loads(config.to_json_best_effort()) if hasattr(config, 'to_json_best_effort') else {}})
    _info(f'networks: G {networks.param_count(state.g_params):,} params, D {networks.param_count(state.d_params):,} '
          f'params; {cfg.img_resolution}x{cfg.img_resolution}, batch {batch} on {jax.device_count()} device(s) '
          f'({trainer.per_device}/device, rounds of {trainer.chunk}); r1_gamma {tc.loss.r1_gamma:g}, '
          f'ema_kimg {tc.ema_kimg:g}, ADA {"off" if tc.loss.augment_spec is None else config.ada.mode}')

    # Load training set: this process's shards (one per local device), from the resumed position.
    data = input_pipeline.create_input_iter(config.data, batch, int(config.seed), start_step=step, c_dim=cfg.c_dim,
                                            workdir=str(workdir), local_shards=trainer.n_local)

    # Distribute across devices. The host state is dropped: step() may donate the device buffers.
    rstate = trainer.replicate(state)
    del state
    device_batches = trainer.prefetch(data)

    # Export sample images; set up metrics and logs.
    grid = GridSampler(cfg, parse_seeds(str(config.log.grid_seeds)), batch=trainer.chunk)
    evaluator, why = evaluator_lib.from_training_config(config, workdir)
    if evaluator is None:
        _info(f'FID skipped: {why}')
    writer = EventWriter(workdir, enabled=primary)
    loss_log = history.JsonLog.open(workdir / 'loss_history.jsonl', step, writer=primary)
    metrics_log = history.JsonLog.open(workdir / 'metrics.jsonl', step, writer=primary)
    progress = Progress.for_run(config, workdir, kimg_of(step)) if primary else None  # samples/progress.png, SWD
    every = lambda kimg: max(1, round(float(kimg) * 1000 / batch))  # noqa: E731  kimg -> steps
    log_every = max(1, int(config.log.log_every_steps))
    ckpt_every, grid_every = every(config.log.checkpoint_kimg), every(config.log.grid_kimg)
    fid_every = every(config.log.fid_kimg) if evaluator is not None else 0
    keep = int(config.log.keep_checkpoints)
    max_bad = max(1, int(config.train.max_bad_steps))

    def save_grid() -> np.ndarray:
        """The sample grid PNG of the current G_ema; returns its uint8 images."""
        path = workdir / 'samples' / f'grid_kimg{int(round(kimg_of(step))):05d}.png'
        images = grid.save(trainer.unreplicate(rstate.ema_vars), path)
        if progress is not None:
            vals = {f'Metrics/{k}': v for k, v in progress.update(kimg_of(step), images).items()}
            writer.write_scalars(step, vals)
            loss_log.append({'step': step, 'Progress/kimg': kimg_of(step), **vals})
        return images

    def snapshot() -> None:
        """Network snapshot, FID on it when due, the keep policy, the loss curves."""
        host = jax.device_get(trainer.unreplicate(rstate))
        snapshots.save(manager, host, {'step': step, 'kimg': kimg_of(step), 'batch': batch, 'seed': int(config.seed),
                                       'data_position': step, 'time': time.time()})
        if fid_every and (step % fid_every == 0 or step >= total_steps):
            vals = evaluator(cfg, host.ema_vars, jax.random.PRNGKey(step))
            metrics_log.append({'step': step, 'kimg': kimg_of(step), 'snapshot': f'checkpoints/{step}',
                                **vals, 'num_fake': int(config.log.fid_num_fake), 'time': time.time()})
            writer.write_scalars(step, {f'Metrics/{k}': v for k, v in vals.items()})
            _info(f'kimg {kimg_of(step):.1f}: ' + ', '.join(f'{k} {v:.4g}' for k, v in vals.items()))
        snapshots.prune(manager, keep, history.best_step(metrics_log.records) if evaluator is not None else None)
        if primary:
            plots.plot_loss_curves(loss_log.records, workdir / 'loss_curves.png', tc.ada_target)

    if primary and step == 0:
        save_grid()
    if jax.process_count() > 1:
        # Start the first step together (process 0 did the grid and progress set-up alone): a barrier of
        # the coordination service (given `processes`, orbax does not use a device collective for it).
        from orbax.checkpoint import multihost
        multihost.sync_global_processes(f'stylegan_jax_train_start_{step}', processes=set(range(jax.process_count())))

    # Train.
    bar = tqdm(total=round(kimg_of(total_steps), 3), initial=round(kimg_of(step), 3), unit='kimg', file=sys.stderr,
               dynamic_ncols=True, disable=not primary,
               bar_format='{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}{postfix}]')
    pending: list[dict] = []
    prev_ok = None
    bad = 0
    t_last, step_last = time.time(), step
    try:
        while step < total_steps:
            # Training phases, G EMA, ADA p (one pure step on the devices).
            rstate, metrics, ok = trainer.step(rstate, next(device_batches), step)
            step += 1
            pending.append(metrics)
            # Non-finite guard, read one step late so the host does not wait for the device every step.
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

            # Status: averaged scalars, timing, peak memory.
            if step % log_every == 0 or done:
                avg = _average(jax.device_get([trainer.unreplicate(m) for m in pending]))
                pending = []
                now = time.time()
                sec_per_kimg = (now - t_last) / max(1e-9, kimg_of(step - step_last))
                t_last, step_last = now, step
                avg.update({'Progress/kimg': kimg_of(step), 'Timing/sec_per_kimg': sec_per_kimg,
                            **resources.peak_memory_gb(trainer.devices)})
                writer.write_scalars(step, avg)
                loss_log.append({'step': step, **avg})
                bar.set_postfix_str(f'{sec_per_kimg:.1f} sec/kimg, G {avg.get("Loss/G/loss", float("nan")):.3f}, '
                                    f'D {avg.get("Loss/D/loss", float("nan")):.3f}, '
                                    f'p {avg.get("Progress/augment", 0):.3f}')

            # Network snapshot (and metrics on it).
            if step % ckpt_every == 0 or (fid_every and step % fid_every == 0) or done:
                if not bool(trainer.unreplicate(ok)) and bad + 1 >= max_bad:
                    continue  # about to stop on the guard: leave the last good snapshot as it is
                snapshot()

            # Sample grid.
            if primary and (step % grid_every == 0 or done):
                save_grid()
    finally:
        bar.close()
        writer.flush()
        writer.close()
    if prev_ok is not None and not bool(trainer.unreplicate(prev_ok)):
        _info(f'non-finite loss or gradient at step {step - 1}: step skipped')
    _info(f'done: {kimg_of(step):.1f} kimg; checkpoints in {workdir / "checkpoints"}; '
          f'sample with: stylegan-sample --checkpoint {workdir} --seeds 0-15 --outdir OUT')
    return jax.device_get(trainer.unreplicate(rstate))
