"""Sweeps: one training run per value of a config key, all evaluated the same way.

    python -m stylegan_jax.study --config configs/demo.py --sweep data.photo_ratio=0,0.25,0.5,0.75,1 \
        --workdir runs/study [--config.train.total_kimg=6] [--num_fake=256] [--inception_weights=FILE]

The question it was written for: how does the mix of photos and paintings in a small fine-tuning
set change the results? Any config key can be swept (`--sweep train.freeze_d=0,1,2`), and several
`--sweep` flags sweep their product. `--config.key=value` overrides apply to every run, exactly
as for run_train.py.

For each value, in order: train (``WORKDIR/runs/<key>=<value>``, a normal training workdir, so a
rerun resumes or skips finished runs), then evaluate its final G_ema on the same real sets: all
images of the configured data set, photos only and paintings only (the kinds of a TFDS set from
`data-prep build` or of the demo elves; without kinds only 'all'), whatever the run trained on.
Metrics: SWD (`metrics.swd`, always; x 1e3) and FID / KID on Inception features when the weights
are available (``--fid=auto``: a given ``--inception_weights`` file or the cached download; 'on'
downloads them if needed, 'off' skips). All runs use the same ``--num_fake`` samples (seeded).

Outputs: ``WORKDIR/study.json`` (the sweep, the real sets, every run's metrics as numbers) and
``WORKDIR/study.png`` (each metric against the swept value, one line per real set, and a row of
sample grids, one per value). With ``--jobs`` nothing is trained: ``WORKDIR/jobs.txt`` gets one
run_train.py command per run (for several machines sharing WORKDIR); run the same study command
with ``--evaluate_only`` afterwards to evaluate and plot.
"""
from __future__ import annotations

import ast
import itertools
import json
import os
import pathlib
import shlex
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ['parse_sweep', 'expand_sweeps', 'run_name', 'real_sets', 'evaluate_run', 'run_study',
           'plot_study', 'StudyError']

REAL_SETS = (('all', None), ('photos', 1.0), ('paintings', 0.0))  # name, photo_ratio that selects it
GRID_SEEDS = list(range(16))


class StudyError(ValueError):
    """A bad sweep or a run that cannot be evaluated; the message says which and why."""


# ------------------------------------------------------------------------------------- sweeps

def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.lower() in ('none', 'null'):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: a string value


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """'data.photo_ratio=0,0.5,1' -> ('data.photo_ratio', [0, 0.5, 1])."""
    key, sep, values = spec.partition('=')
    key = key.strip()
    if not sep or not key or not values.strip():
        raise StudyError(f'--sweep {spec!r}: expected KEY=V1,V2,... (e.g. data.photo_ratio=0,0.5,1)')
    parsed = [_parse_value(v) for v in values.split(',') if v.strip()]
    if len(set(map(repr, parsed))) != len(parsed):
        raise StudyError(f'--sweep {spec!r}: a value is repeated')
    return key, parsed


def _node(config: Any, key: str) -> tuple[Any, str]:
    parts = key.split('.')
    node = config
    for i, part in enumerate(parts[:-1]):
        if part not in node:
            raise StudyError(f'--sweep {key}: config has no section {".".join(parts[:i + 1])!r}')
        node = node[part]
    if parts[-1] not in node:
        raise StudyError(f'--sweep {key}: not a config key (the config has no {parts[-1]!r} in '
                         f'{".".join(parts[:-1]) or "the top level"})')
    return node, parts[-1]


def apply_values(config: Any, values: dict[str, Any]) -> Any:
    """A copy of ``config`` with ``values`` ({dotted key: value}) set, type-checked as ConfigDict does."""
    out = config.copy_and_resolve_references()
    for key, value in values.items():
        node, leaf = _node(out, key)
        if isinstance(node[leaf], float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise StudyError(f'--sweep {key}={value!r}: {e}') from None
    return out


def expand_sweeps(sweeps: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """The product of the sweeps, first key slowest: [{key: value, ...}, ...]."""
    keys = [k for k, _ in sweeps]
    if len(set(keys)) != len(keys):
        raise StudyError('--sweep: the same key is swept twice')
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in sweeps))]


def run_name(values: dict[str, Any]) -> str:
    """Directory name of a run: 'data.photo_ratio=0.25' (keys joined with ',')."""
    name = ','.join(f'{k}={v}' for k, v in values.items())
    return ''.join(c if c.isalnum() or c in '._=,-+' else '_' for c in name)


# ---------------------------------------------------------------------------------- evaluation

def real_sets(config: Any, workdir: str | os.PathLike, max_images: int | None = None) -> dict[str, np.ndarray]:
    """{'all', 'photos', 'paintings'}: uint8 images of the configured data (no flips), whatever
    data.photo_ratio the runs use. Sets that cannot be formed (no kinds) are left out."""
    from stylegan_jax.train.progress import MAX_REAL, load_reals
    out: dict[str, np.ndarray] = {}
    for name, ratio in REAL_SETS:
        c = apply_values(config, {'data.photo_ratio': ratio, 'data.xflip': False})
        try:
            out[name] = load_reals(c, workdir, max_images or MAX_REAL * 4)
        except ValueError:
            if name == 'all':
                raise
    return out


class _Inception:
    """FID/KID of fake images against each real set (Inception pool features; real side computed once)."""

    def __init__(self, reals: dict[str, np.ndarray], weights: str | None, download: bool) -> None:
        from stylegan_jax.metrics import inception
        from stylegan_jax.metrics.stats import FeatureStats
        if weights is None and not download:
            cached = inception.cache_dir() / inception.FID_WEIGHTS_URL.rsplit('/', 1)[-1]
            if not cached.is_file():
                raise inception.MetricsError(f'no Inception weights ({cached} not cached; pass '
                                             '--inception_weights FILE, or --fid=on to download them)')
            weights = str(cached)
        path = inception.resolve_weights(weights)
        self.extractor = inception.FeatureExtractor(inception.load_params(path), batch_size=32)
        self.real = {name: FeatureStats.from_features(self.extractor(images)['pool'])
                     for name, images in reals.items()}

    def __call__(self, fakes: np.ndarray) -> dict[str, dict[str, float]]:
        from stylegan_jax.metrics.evaluator import compute_metrics
        pool = self.extractor(fakes)['pool']
        out = {}
        for name, real in self.real.items():
            m = compute_metrics(('fid', 'kid'), pool, None, real)
            out[name] = {'fid': m['fid'], 'kid': m['kid_mean'], 'kid_std': m['kid_std']}
        return out


def sample_fakes(run_dir: str | os.PathLike, num: int, seed: int = 123,
                 samplers: dict[Any, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(num random G_ema samples, the GRID_SEEDS grid images) of a run: truncation 1, random noise
    for the metric samples (the papers' protocol), const noise for the grid (as the training grids).

    ``samplers`` ({NetworkConfig: Sampler}) reuses the compiled generator of an earlier run with
    the same network (a sweep that does not change the architecture compiles it once).
    """
    import jax

    from stylegan_jax import checkpoint
    from stylegan_jax.sample import Sampler, z_from_seeds
    cfg, variables, info = checkpoint.load_network(run_dir, 'G_ema')
    samplers = {} if samplers is None else samplers
    if cfg in samplers:
        sampler = samplers[cfg]
        sampler.variables, sampler.info = jax.device_put(variables), info
    else:
        sampler = samplers[cfg] = Sampler(cfg, variables, info)
    z = np.random.default_rng(seed).standard_normal((num, sampler.z_dim)).astype(np.float32)
    fakes = sampler.images_from_z(z, noise_mode='random', seed=seed)
    grid = sampler.images_from_z(z_from_seeds(GRID_SEEDS, sampler.z_dim))
    return fakes, grid


def evaluate_run(run_dir: str | os.PathLike, swds: dict[str, Any], num_fake: int,
                 inception: _Inception | None = None, samplers: dict[Any, Any] | None = None
                 ) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """({real set: {metric: value}}, grid images) of a finished run."""
    fakes, grid = sample_fakes(run_dir, num_fake, samplers=samplers)
    metrics = {name: {k: float(v) for k, v in swd(fakes).items()} for name, swd in swds.items()}
    if inception is not None:
        for name, vals in inception(fakes).items():
            metrics[name].update(vals)
    return metrics, grid


# ---------------------------------------------------------------------------------- the study

def _trained_kimg(run_dir: pathlib.Path) -> float | None:
    """kimg of a run's latest snapshot (None: no snapshot, or a converted checkpoint)."""
    from stylegan_jax import checkpoint
    snaps = checkpoint.list_snapshots(run_dir)
    return snaps[-1][1] if snaps else None


def run_study(config: Any, sweeps: Sequence[tuple[str, list[Any]]], workdir: str | os.PathLike, *,
              num_fake: int = 256, fid: str = 'auto', inception_weights: str | None = None,
              train: bool = True, config_file: str = '', overrides: Sequence[str] = (),
              train_fn: Callable[[Any, str], Any] | None = None, log: Callable[[str], None] = print
              ) -> dict[str, Any]:
    """Train (unless ``train`` is False) and evaluate every run of the sweep; write study.json/png.

    ``train_fn(config, run_dir)`` trains one run (default: `train.loop.train_and_evaluate`).
    Returns the study record (what study.json holds).
    """
    workdir = pathlib.Path(workdir).absolute()
    combos = expand_sweeps(sweeps)
    configs = [apply_values(config, values) for values in combos]  # all sweep values checked before any training
    if fid not in ('auto', 'on', 'off'):
        raise StudyError(f"--fid must be 'auto', 'on' or 'off', got {fid!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    names = [run_name(v) for v in combos]
    if train:
        if train_fn is None:
            from stylegan_jax.train.loop import train_and_evaluate as train_fn
        for i, (name, c) in enumerate(zip(names, configs)):
            log(f'study: run {i + 1}/{len(names)}: {name}')
            t0 = time.time()
            train_fn(c, str(workdir / 'runs' / name))
            log(f'study: run {name} trained in {time.time() - t0:.0f} s')
    from stylegan_jax import checkpoint
    missing = [n for n in names if not checkpoint.list_snapshots(workdir / 'runs' / n)
               and not (workdir / 'runs' / n / 'G_ema').is_dir()]
    if missing:
        raise StudyError(f'{workdir / "runs" / missing[0]}: no finished checkpoint '
                         f'({len(missing)} of {len(names)} runs missing); train them first')

    from stylegan_jax.metrics.swd import SWD
    reals = real_sets(config, workdir / 'real')
    swds = {name: SWD(images) for name, images in reals.items()}
    log('study: real sets: ' + ', '.join(f'{k} {len(v)} images' for k, v in reals.items()))
    inception, fid_note = None, ''
    if fid != 'off':
        try:
            inception = _Inception(reals, inception_weights, fid == 'on')
        except Exception as e:  # MetricsError (weights unavailable) and I/O errors
            if fid == 'on':
                raise StudyError(f'FID/KID: {e}') from None
            fid_note = f'FID/KID skipped: {str(e).splitlines()[0][:200]}'
            log(f'study: {fid_note}')
    else:
        fid_note = 'FID/KID off (--fid=off)'

    from stylegan_jax.train import input_pipeline
    runs, grids, samplers = [], [], {}
    for name, values, c in zip(names, combos, configs):
        run_dir = workdir / 'runs' / name
        metrics, grid = evaluate_run(run_dir, swds, num_fake, inception, samplers)
        grids.append(grid)
        try:
            n_train = input_pipeline.dataset_size(c.data, str(run_dir), int(c.seed), int(c.model.c_dim))
        except ValueError:
            n_train = None
        runs.append({'name': name, 'values': values, 'workdir': str(run_dir), 'kimg': _trained_kimg(run_dir),
                     'train_images': n_train, 'metrics': metrics})
        log(f'study: {name}: ' + '; '.join(f'{s} ' + ' '.join(f'{k} {v:.4g}' for k, v in m.items()
                                                                 if not k.startswith('swd_'))
                                             for s, m in metrics.items()))
    record = {
        'config': config_file, 'overrides': list(overrides), 'sweep': {k: v for k, v in sweeps},
        'num_fake': num_fake, 'real_sets': {k: len(v) for k, v in reals.items()},
        'metrics': sorted({k for r in runs for m in r['metrics'].values() for k in m}),
        'metric_notes': {'swd': 'sliced Wasserstein distance x 1e3 (Karras et al. 2018), lower is closer; '
                                'swd_<res> per Laplacian-pyramid level',
                         **({'fid': fid_note} if fid_note else {})},
        'runs': runs,
    }
    tmp = workdir / 'study.json.tmp'
    tmp.write_text(json.dumps(record, indent=1, default=float))
    os.replace(tmp, workdir / 'study.json')
    plot_study(record, grids, workdir / 'study.png')
    log(f'study: wrote {workdir / "study.json"} and {workdir / "study.png"}')
    return record


def write_jobs(config_file: str, sweeps: Sequence[tuple[str, list[Any]]], workdir: str | os.PathLike,
               overrides: Sequence[str], python: str = 'python') -> pathlib.Path:
    """WORKDIR/jobs.txt: one run_train.py command line per run of the sweep."""
    workdir = pathlib.Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for values in expand_sweeps(sweeps):
        args = [python, 'run_train.py', '--config', config_file, '--workdir', str(workdir / 'runs' / run_name(values)),
                *overrides, *(f'--config.{k}={v}' for k, v in values.items())]
        lines.append(' '.join(shlex.quote(a) for a in args) + '\n')
    path = workdir / 'jobs.txt'
    path.write_text(''.join(lines))
    return path


# ---------------------------------------------------------------------------------- the figure

def plot_study(record: dict[str, Any], grids: Sequence[np.ndarray], path: str | os.PathLike) -> None:
    """study.png: metric vs swept value (one panel per metric, one line per real set) over a row of
    sample grids (one per run)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from stylegan_jax.sample import image_grid
    from stylegan_jax.train.plots import save_figure
    runs = record['runs']
    keys = list(record['sweep'])
    numeric = len(keys) == 1 and all(isinstance(r['values'][keys[0]], (int, float)) and
                                     not isinstance(r['values'][keys[0]], bool) for r in runs)
    xs = [float(r['values'][keys[0]]) for r in runs] if numeric else list(range(len(runs)))
    labels = [', '.join(f'{v}' for v in r['values'].values()) for r in runs]
    panels = [m for m in ('swd', 'fid', 'kid') if any(m in s for r in runs for s in r['metrics'].values())]
    n = max(len(panels), 1)
    cols = max(n, len(runs))
    fig = plt.figure(figsize=(max(3.2 * n, 2.1 * len(runs)), 5.6))
    grid_spec = fig.add_gridspec(2, cols * 2, height_ratios=[1.25, 1])
    span = (cols * 2) // n
    sets = list(record['real_sets'])
    for i, metric in enumerate(panels):
        ax = fig.add_subplot(grid_spec[0, i * span:(i + 1) * span])
        for s in sets:
            ys = [r['metrics'].get(s, {}).get(metric, np.nan) for r in runs]
            ax.plot(xs, ys, marker='o', label=f'vs {s} ({record["real_sets"][s]})')
        ax.set_title({'swd': 'SWD x1e3', 'fid': 'FID', 'kid': 'KID'}[metric] + ' (lower is closer)', fontsize=9)
        ax.set_xlabel(keys[0] if numeric else ' / '.join(keys), fontsize=8)
        if not numeric:
            ax.set_xticks(xs, labels, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    span = (cols * 2) // len(runs)
    for j, (r, g) in enumerate(zip(runs, grids)):
        ax = fig.add_subplot(grid_spec[1, j * span:(j + 1) * span])
        img = image_grid(np.asarray(g), cols=4)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, interpolation='nearest')
        ax.set_title(labels[j] if len(keys) > 1 else f'{keys[0].split(".")[-1]} = {labels[j]}', fontsize=8)
        ax.axis('off')
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


# ---------------------------------------------------------------------------------- command line

def _overrides(argv: Sequence[str]) -> list[str]:
    """The --config.key=value arguments of a command line (to repeat them in jobs.txt and study.json)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith('--config.'):
            if '=' in a:
                out.append(a)
            elif i + 1 < len(argv):
                out.append(f'{a}={argv[i + 1]}')
                i += 1
        i += 1
    return out


def main() -> None:
    from absl import app, flags
    from ml_collections import config_flags

    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    FLAGS = flags.FLAGS
    config_flags.DEFINE_config_file('config', None, 'Training configuration file (configs/NAME.py).',
                                    lock_config=True)
    flags.DEFINE_string('workdir', None, 'Study directory: runs/, real/, study.json, study.png.')
    flags.DEFINE_multi_string('sweep', None, 'KEY=V1,V2,...: one run per value (several flags: their product).')
    flags.DEFINE_integer('num_fake', 256, 'Generated images per run for the metrics (the same seeds for all runs).')
    flags.DEFINE_enum('fid', 'auto', ['auto', 'on', 'off'], "FID/KID: 'auto' = when Inception weights are "
                      "given or cached, 'on' = download if needed, 'off'.")
    flags.DEFINE_string('inception_weights', None, 'pt_inception-2015-12-05 weights file for FID/KID.')
    flags.DEFINE_bool('jobs', False, 'Only write WORKDIR/jobs.txt (one run_train.py command per run).')
    flags.DEFINE_bool('evaluate_only', False, 'Do not train: evaluate the finished runs in WORKDIR/runs.')
    flags.mark_flags_as_required(['config', 'workdir', 'sweep'])

    def run(argv: list[str]) -> int:
        if len(argv) > 1:
            print(f'stylegan_jax.study: unexpected arguments: {" ".join(argv[1:])}', file=sys.stderr)
            return 2
        from absl import logging
        logging.set_verbosity(logging.WARNING)
        config_file = config_flags.get_config_filename(FLAGS['config'])
        overrides = _overrides(sys.argv[1:])
        try:
            sweeps = [parse_sweep(s) for s in FLAGS.sweep]
            if FLAGS.jobs:
                expand_sweeps(sweeps)
                for values in expand_sweeps(sweeps):
                    apply_values(FLAGS.config, values)
                path = write_jobs(config_file, sweeps, FLAGS.workdir, overrides, sys.executable)
                print(f'wrote {path}: {len(expand_sweeps(sweeps))} run_train.py commands; then rerun this '
                      'command with --evaluate_only instead of --jobs')
                return 0
            run_study(FLAGS.config, sweeps, FLAGS.workdir, num_fake=FLAGS.num_fake, fid=FLAGS.fid,
                      inception_weights=FLAGS.inception_weights, train=not FLAGS.evaluate_only,
                      config_file=config_file, overrides=overrides)
        except Exception as e:
            from stylegan_jax.train.loop import TrainingError
            if not isinstance(e, (StudyError, TrainingError, ValueError, OSError)):
                raise
            print(f'stylegan_jax.study: error: {e}', file=sys.stderr)
            return 1
        return 0

    app.run(run)


if __name__ == '__main__':
    main()
