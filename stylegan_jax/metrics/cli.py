"""`stylegan-metrics`: FID / KID / IS / precision-recall between a real and a fake image set.

    stylegan-metrics --metrics fid,kid,is --real PATH --fake PATH [--num N]
                     [--inception-weights FILE] [--batch B] [--json]

--real: image folder, TFDS dataset directory, or statistics .npz (from --save-stats); its
statistics are cached (see stylegan_jax/metrics/stats.py) unless --no-cache.
--fake: image folder, TFDS dataset directory, or checkpoint (converted dir or training workdir),
sampled with z ~ N(0, I) from --seed, truncation --trunc (1 by default, as the papers do).
--num N: images from a checkpoint (default 50000); for folders/TFDS, use at most the first N.
With --json the last stdout line is one JSON object (keys fid, kid_mean, kid_std, is_mean, is_std,
precision, recall for the metrics asked). Progress bars go to stderr. Errors: one line, exit 1.
Images that are not 299x299 are resized the pytorch-fid way (see inception.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='stylegan-metrics', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--metrics', default='fid', help='comma-separated: fid,kid,is,pr (default fid)')
    p.add_argument('--real', help='real images: folder, TFDS dataset dir, or statistics .npz')
    p.add_argument('--fake', help='fake images: folder, TFDS dataset dir, or checkpoint to sample from')
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


def run(args: argparse.Namespace) -> dict[str, float]:
    """Do what the parsed arguments ask; returns the metric values. Raises MetricsError on bad input."""
    from pathlib import Path

    from stylegan_jax.metrics import inception
    from stylegan_jax.metrics.evaluator import compute_metrics, parse_metrics
    from stylegan_jax.metrics.inception import FeatureExtractor, MetricsError
    from stylegan_jax.metrics.sources import CheckpointSource, open_source
    from stylegan_jax.metrics.stats import FeatureStats, compute_stats

    metrics = parse_metrics(args.metrics)
    progress = not args.quiet
    if args.batch < 1:
        raise MetricsError(f'--batch must be >= 1, got {args.batch}')
    if args.fake is None and not args.save_stats:
        raise MetricsError('--fake is required (or --save-stats to only compute real statistics)')
    if args.real is None and (args.save_stats or any(m in ('fid', 'kid', 'pr') for m in metrics)):
        raise MetricsError('--real is required for fid, kid, pr and --save-stats')

    # Check every path before the slow parts start.
    real_stats_file = args.real is not None and Path(args.real).suffix == '.npz'
    real_source = None
    if args.real is not None:
        if real_stats_file:
            real = FeatureStats.load(args.real)
        else:
            real_source = open_source(args.real)
            if isinstance(real_source, CheckpointSource):
                raise MetricsError(f'{args.real}: --real must be images or a statistics .npz, not a checkpoint')
    fake_source = open_source(args.fake, seed=args.seed, truncation=args.trunc) if args.fake else None
    weights = inception.resolve_weights(args.inception_weights, progress=progress)
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
    if fake_source is None:
        return {}
    fake = extractor.extract(fake_source.batches(args.batch, args.num), total=fake_source.count(args.num),
                             progress=progress, desc='fake')
    if len(fake['pool']) < 2:
        raise MetricsError(f'{args.fake}: need at least 2 images, got {len(fake["pool"])}')
    values = compute_metrics(metrics, fake['pool'], fake['logits_unbiased'], real if args.real else None,
                             kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                             is_splits=args.is_splits, pr_k=args.pr_k, seed=args.seed)
    print(f'{len(fake["pool"])} fake images ({fake_source.description}) in {time.time() - t0:.1f} s',
          file=sys.stderr)
    return values


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from stylegan_jax.metrics.inception import MetricsError

    try:
        values = run(args)
    except MetricsError as e:
        print(f'stylegan-metrics: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('stylegan-metrics: interrupted', file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # anything else bad about the input: still one line
        print(f'stylegan-metrics: error: {type(e).__name__}: {e}', file=sys.stderr)
        return 1
    for k, v in values.items():
        print(f'{k}: {v:.6g}')
    if args.json:
        print(json.dumps(values))
    return 0


if __name__ == '__main__':
    sys.exit(main())
