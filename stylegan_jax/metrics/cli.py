"""`stylegan-metrics`: FID / KID / IS / precision-recall between a real and a fake image set, and PPL.

    stylegan-metrics --metrics fid,kid,is --real PATH --fake PATH [--num N]
                     [--inception-weights FILE] [--batch B] [--json]
    stylegan-metrics --metrics fid,ppl_wend --fake runs/elf --kimg 400 --vgg16 vgg16.pt

--real: image folder, StyleGAN2-ADA dataset .zip, TFDS dataset directory, or statistics .npz
(from --save-stats); its statistics are cached (see stylegan_jax/metrics/stats.py) unless
--no-cache. Omitted with a training workdir as --fake: the real set the run recorded in its
network.json (log.fid_real, data.path or the demo set), resized to the model's resolution.
--fake: image folder, dataset .zip, TFDS dataset directory, or any checkpoint (a .pkl/.pt file,
a converted dir, a training workdir with --step/--kimg), sampled with z ~ N(0, I) from --seed,
truncation --trunc (1 by default, as the papers do).
--num N: images from a checkpoint (default 50000, also the PPL sample count); for folders/TFDS,
use at most the first N.
PPL (ppl_wend, ppl2_wend, ppl_wfull, ppl_zend, ppl_zfull; stylegan_jax/metrics/ppl.py) needs a
checkpoint as --fake; its distance is VGG16 LPIPS with --vgg16 (the reference's vgg16.pt), else
the FID Inception features with --inception-weights, else pixels: the JSON names it (ppl_distance).
With --json the last stdout line is one JSON object (keys fid, kid_mean, kid_std, is_mean, is_std,
precision, recall for the metrics asked). Progress bars go to stderr. Errors: one line, exit 1.
Images that are not 299x299 are resized the pytorch-fid way (see inception.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

from stylegan_jax import cli_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='stylegan-metrics', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--metrics', default='fid', help='comma-separated: fid,kid,is,pr,ppl_wend,... (default fid)')
    p.add_argument('--real', help='real images: folder, dataset .zip, TFDS dataset dir, or statistics .npz '
                                  '(default for a workdir --fake: the real set it recorded)')
    p.add_argument('--fake', help='fake images: folder, dataset .zip, TFDS dataset dir, or checkpoint to sample from')
    p.add_argument('--step', type=int, default=None, help='--fake workdir: use the snapshot of this step')
    p.add_argument('--kimg', type=float, default=None, help='--fake workdir: use the snapshot at this kimg')
    p.add_argument('--vgg16', metavar='FILE', default=None, help="the reference's vgg16.pt (PPL distance)")
    p.add_argument('--ppl-batch', type=int, default=16, help='PPL pairs per jitted batch (default 16)')
    p.add_argument('--num', type=int, default=None,
                   help='images sampled from a checkpoint (default 50000); for folders: use at most N')
    p.add_argument('--num-real', type=int, default=None, help='use at most this many real images')
    p.add_argument('--inception-weights', default=None,
                   help='pt_inception-2015-12-05-6726825d.pth (default: download once to the cache)')
    p.add_argument('--batch', type=int, default=32, help='images per Inception batch (default 32)')
    p.add_argument('--seed', type=int, default=0, help='seed for checkpoint sampling and KID subsets')
    p.add_argument('--trunc', type=float, default=1.0, help='truncation psi for checkpoint sampling (default 1)')
    p.add_argument('--kid-subsets', type=int, default=100)
    p.add_argument('--kid-subset-size', type=int, default=1000)
    p.add_argument('--is-splits', type=int, default=10)
    p.add_argument('--pr-k', type=int, default=3, help='k of the k-NN radii for precision/recall')
    p.add_argument('--save-stats', metavar='FILE.npz', help='also write the real set statistics to this file')
    p.add_argument('--no-cache', action='store_true', help='do not read or write the real statistics cache')
    p.add_argument('--json', action='store_true', help='print one JSON object as the last stdout line')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    return p


def _split_metrics(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(feature metrics for evaluator.parse_metrics, PPL metric names)."""
    from stylegan_jax.metrics.evaluator import parse_metrics
    from stylegan_jax.metrics.inception import MetricsError
    from stylegan_jax.metrics.ppl import PPL_METRICS

    names = [n.strip().lower() for n in text.split(',') if n.strip()]
    ppl = tuple(dict.fromkeys(n for n in names if n.startswith('ppl')))
    bad = [n for n in ppl if n not in PPL_METRICS]
    if bad:
        raise MetricsError(f'unknown metric {bad[0]!r} (PPL variants: {", ".join(PPL_METRICS)})')
    rest = [n for n in names if not n.startswith('ppl')]
    return (parse_metrics(rest) if rest or not ppl else ()), ppl


def run(args: argparse.Namespace) -> dict[str, float | str]:
    """Do what the parsed arguments ask; returns the metric values. Raises MetricsError on bad input."""
    from pathlib import Path

    from stylegan_jax.metrics import inception
    from stylegan_jax.metrics.inception import MetricsError
    from stylegan_jax.metrics.sources import CheckpointSource, open_source, recorded_real_set
    from stylegan_jax.metrics.stats import FeatureStats

    metrics, ppl_metrics = _split_metrics(args.metrics)
    progress = not args.quiet
    if args.batch < 1:
        raise MetricsError(f'--batch must be >= 1, got {args.batch}')
    if args.fake is None and not args.save_stats:
        raise MetricsError('--fake is required (or --save-stats to only compute real statistics)')
    # Check every path before the slow parts start: --real first, then --fake.
    def open_real(path: str, resolution: int | None = None) -> tuple[bool, Any, Any]:
        if Path(path).suffix == '.npz':
            return True, FeatureStats.load(path), None
        source = open_source(path, resolution=resolution)
        if isinstance(source, CheckpointSource):
            raise MetricsError(f'{path}: --real must be images or a statistics .npz, not a checkpoint')
        return False, None, source

    needs_real = args.save_stats or any(m in ('fid', 'kid', 'pr') for m in metrics)
    real_stats_file, real, real_source = open_real(args.real) if args.real is not None else (False, None, None)
    fake_source = (open_source(args.fake, seed=args.seed, truncation=args.trunc, step=args.step, kimg=args.kimg)
                   if args.fake else None)
    if ppl_metrics and not isinstance(fake_source, CheckpointSource):
        raise MetricsError(f'{ppl_metrics[0]} needs a checkpoint as --fake (it interpolates latents)')
    if args.real is None and needs_real:
        recorded = recorded_real_set(args.fake) if isinstance(fake_source, CheckpointSource) else None
        if recorded is None:
            raise MetricsError('--real is required for fid, kid, pr and --save-stats'
                               + (f' ({args.fake} records no real set)' if fake_source is not None else ''))
        resolution = fake_source.sampler.resolution
        print(f'--real: {recorded} (recorded by the training run; resized to {resolution}px)', file=sys.stderr)
        real_stats_file, real, real_source = open_real(str(recorded), resolution)
    values: dict[str, float | str] = {}
    if metrics or args.save_stats:
        weights = inception.resolve_weights(args.inception_weights, progress=progress)
        values.update(_feature_metrics(args, metrics, fake_source, real_source, real_stats_file, real, weights,
                                       progress))
    if ppl_metrics:
        values.update(_ppl(args, ppl_metrics, fake_source, progress))
    return values


def _feature_metrics(args, metrics, fake_source, real_source, real_stats_file, real, weights, progress):
    from stylegan_jax.metrics import inception
    from stylegan_jax.metrics.evaluator import compute_metrics
    from stylegan_jax.metrics.inception import FeatureExtractor, MetricsError
    from stylegan_jax.metrics.stats import compute_stats

    t0 = time.time()
    extractor = FeatureExtractor(inception.load_params(weights), args.batch)
    if real_source is not None:
        real = compute_stats(real_source, extractor, inception.sha256_file(weights), args.num_real,
                             cache=not args.no_cache, progress=progress)
        if real.meta.get('from_cache'):
            print(f'real statistics from cache {real.meta.get("cache_file")}', file=sys.stderr)
    elif real_stats_file and real.meta.get('weights_sha256') not in (None, inception.sha256_file(weights)):
        print(f'warning: {args.real} was computed with other Inception weights', file=sys.stderr)
    if args.save_stats:
        real.save(args.save_stats)
        print(f'wrote {args.save_stats}', file=sys.stderr)
    if fake_source is None or not metrics:
        return {}
    fake = extractor.extract(fake_source.batches(args.batch, args.num), total=fake_source.count(args.num),
                             progress=progress, desc='fake')
    if len(fake['pool']) < 2:
        raise MetricsError(f'{args.fake}: need at least 2 images, got {len(fake["pool"])}')
    values = compute_metrics(metrics, fake['pool'], fake['logits_unbiased'], real,
                             kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                             is_splits=args.is_splits, pr_k=args.pr_k, seed=args.seed)
    print(f'{len(fake["pool"])} fake images ({fake_source.description}) in {time.time() - t0:.1f} s',
          file=sys.stderr)
    return values


def _ppl(args, names, fake_source, progress) -> dict[str, float | str]:
    from stylegan_jax.metrics import ppl
    from stylegan_jax.perceptual import distance

    dist = distance.choose(args.vgg16, args.inception_weights)
    print(f'PPL distance: {dist.name} ({dist.description})', file=sys.stderr)
    s = fake_source.sampler
    out: dict[str, float | str] = {}
    for name in names:
        r = ppl.compute_named(name, s.cfg, s.variables, dist, num_samples=args.num or 50000, batch=args.ppl_batch,
                              seed=args.seed, progress=progress)
        out[name] = r.value
    out['ppl_distance'] = dist.name
    return out


@cli_errors.command('stylegan-metrics')
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `stylegan-metrics` (one-line errors, exit 130 on Ctrl-C: stylegan_jax.cli_errors)."""
    args = build_parser().parse_args(argv)
    from stylegan_jax import compile_cache

    compile_cache.enable()
    values = run(args)
    for k, v in values.items():
        print(f'{k}: {v:.6g}' if isinstance(v, float) else f'{k}: {v}')
    if args.json:
        print(json.dumps(values))
    return 0


if __name__ == '__main__':
    sys.exit(main())
