"""Metrics during training: sample G on the device, extract Inception features, compare with real stats.

    evaluator = Evaluator(real='data/ffhq256', inception_weights=None, num_fake=10000, batch=64)
    ...every N kimg:  values = evaluator(cfg, g_ema_variables, key)   # {'fid': ...}

The real set's statistics are computed once (or read from a statistics .npz / the stats cache, see
`stats.py`). Each call generates `num_fake` images with z ~ N(0, I), truncation 1 and random noise
(the papers' protocol), and for conditional generators uniformly random classes, in batches with one
jitted function that runs G, the uint8 quantisation (`sample.to_uint8`: x * 127.5 + 128, clip,
truncate; what `stylegan-sample` writes to PNG) and the Inception network, so images never leave
the device. `from_training_config` builds one from a training config's `log` section.

Construction raises `MetricsError` when the Inception weights are not available (not given and not
downloadable), so training can log "FID skipped: <reason>" and go on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.metrics import inception, scores
from stylegan_jax.metrics.inception import NUM_FEATURES, FeatureExtractor, MetricsError
from stylegan_jax.metrics.stats import FeatureStats, compute_stats
from stylegan_jax.sample import to_uint8

METRICS = ('fid', 'kid', 'is', 'pr')


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    """'fid,kid' -> ('fid', 'kid'); MetricsError for unknown names."""
    names = [s.strip().lower() for s in (text.split(',') if isinstance(text, str) else text) if s.strip()]
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise MetricsError(f'unknown metric {bad[0]!r} (choose from {", ".join(METRICS)})' if bad
                           else f'no metrics given (choose from {", ".join(METRICS)})')
    return tuple(dict.fromkeys(names))


def compute_metrics(metrics: Sequence[str], fake_pool: np.ndarray, fake_logits: np.ndarray | None = None,
                    real: FeatureStats | None = None, kid_subsets: int = 100, kid_subset_size: int = 1000,
                    is_splits: int = 10, pr_k: int = 3, seed: int = 0) -> dict[str, float]:
    """The asked metrics from fake features (and logits without the fc bias, for IS) and real statistics.

    Keys: fid; kid_mean, kid_std; is_mean, is_std; precision, recall.
    """
    out: dict[str, float] = {}
    fake_pool = np.asarray(fake_pool)
    needs_real = [m for m in metrics if m in ('fid', 'kid', 'pr')]
    if needs_real and real is None:
        raise MetricsError(f'{needs_real[0]} needs a real set (--real)')
    needs_feats = [m for m in metrics if m in ('kid', 'pr')]
    if needs_feats and real is not None and real.features is None:
        raise MetricsError(f'{needs_feats[0]} needs real features, but the statistics file has only mu/sigma')
    if 'fid' in metrics:
        if len(fake_pool) < 2:
            raise MetricsError(f'FID needs at least 2 fake images, got {len(fake_pool)}')
        if real.has_all_features and len(real.features) * len(fake_pool) <= NUM_FEATURES ** 2:
            out['fid'] = scores.fid_from_features(real.features, fake_pool)  # exact low-rank form
        else:
            out['fid'] = scores.frechet_distance(real.mu, real.sigma, *scores.feature_stats(fake_pool))
    if 'kid' in metrics:
        out['kid_mean'], out['kid_std'] = scores.kid(real.features, fake_pool, kid_subsets, kid_subset_size, seed)
    if 'is' in metrics:
        if fake_logits is None:
            raise MetricsError('IS needs the Inception logits of the fake images')
        out['is_mean'], out['is_std'] = scores.inception_score(fake_logits, min(is_splits, len(fake_logits)))
    if 'pr' in metrics:
        out['precision'], out['recall'] = scores.precision_recall(real.features, fake_pool, pr_k)
    return out


class Evaluator:
    """Built once; each call samples a generator and returns {'fid': ...} (plus any other asked metrics).

    Args:
      real: image folder, TFDS dataset directory, or a statistics .npz (`FeatureStats.save`,
        `stylegan-metrics --save-stats`).
      inception_weights: FID Inception weights file; None = the cached download of the standard file
        (raises MetricsError if it is not cached and cannot be downloaded).
      num_fake: generated images per evaluation (papers: 50000; fewer gives a biased-high FID).
      batch: images per jitted generator+Inception batch.
      metrics: any of 'fid', 'kid', 'is', 'pr'.
      num_real: use at most this many real images (None: all).
      cache: read/write the real statistics in the stats cache (`stats.default_stats_dir()`).
    """

    def __init__(self, real: str | os.PathLike, inception_weights: str | os.PathLike | None = None,
                 num_fake: int = 50000, batch: int = 64, metrics: Sequence[str] = ('fid',),
                 num_real: int | None = None, cache: bool = True, stats_dir: str | os.PathLike | None = None,
                 progress: bool = False) -> None:
        from stylegan_jax.metrics.sources import CheckpointSource, open_source

        self.metrics = parse_metrics(metrics)
        if num_fake < 2 or batch < 1:
            raise MetricsError(f'num_fake must be >= 2 and batch >= 1, got {num_fake} and {batch}')
        self.num_fake, self.batch, self.progress = int(num_fake), int(batch), progress
        weights = inception.resolve_weights(inception_weights, progress=progress)
        self.weights_path = weights
        self.params = jax.device_put(inception.load_params(weights))
        self.extractor = FeatureExtractor(self.params, batch)
        real_path = Path(real)
        if real_path.suffix == '.npz' and real_path.is_file():
            self.real = FeatureStats.load(real_path)
        else:
            source = open_source(real_path)
            if isinstance(source, CheckpointSource):
                raise MetricsError(f'{real_path}: the real set must be images or a statistics file, not a checkpoint')
            self.real = compute_stats(source, self.extractor, inception.sha256_file(weights), num_real, cache=cache,
                                      stats_dir=stats_dir, progress=progress)
        self._fns: dict[Any, Any] = {}

    def _fn(self, cfg: Any) -> Any:
        if cfg not in self._fns:
            from stylegan_jax.networks import Generator

            gen = Generator(cfg)
            batch = self.batch

            def run(g_variables: dict, inc_params: dict, key: jax.Array) -> dict[str, jax.Array]:
                kz, kc, kn = jax.random.split(key, 3)
                z = jax.random.normal(kz, (batch, cfg.z_dim), jnp.float32)
                c = (jax.nn.one_hot(jax.random.randint(kc, (batch,), 0, cfg.c_dim), cfg.c_dim)
                     if cfg.c_dim else None)
                img = gen.apply(g_variables, z, c, 1.0, None, 'random', rngs={'noise': kn})
                if img.shape[-1] == 1:
                    img = jnp.repeat(img, 3, axis=-1)
                u8 = to_uint8(img.astype(jnp.float32))
                out = inception.InceptionV3FID().apply({'params': inc_params}, inception.preprocess(u8))
                return {'pool': out['pool'], 'logits_unbiased': out['logits_unbiased']}

            self._fns[cfg] = jax.jit(run)
        return self._fns[cfg]

    def fake_features(self, cfg: Any, g_variables: dict, key: jax.Array) -> dict[str, np.ndarray]:
        """pool [num_fake, 2048] and logits_unbiased [num_fake, 1008] of fresh samples of G.

        `g_variables` are one copy (host or one device); training passes `Trainer.unreplicate(...)`.
        """
        fn = self._fn(cfg)
        pools, logits = [], []
        bar = inception._progress(total=self.num_fake, desc='fake', unit='img', disable=not self.progress)
        done = 0
        while done < self.num_fake:
            key, sub = jax.random.split(key)
            out = fn(g_variables, self.params, sub)
            take = min(self.batch, self.num_fake - done)
            pools.append(np.asarray(out['pool'][:take]))
            logits.append(np.asarray(out['logits_unbiased'][:take]))
            done += take
            bar.update(take)
        bar.close()
        return {'pool': np.concatenate(pools), 'logits_unbiased': np.concatenate(logits)}

    def __call__(self, cfg: Any, g_variables: dict, key: jax.Array) -> dict[str, float]:
        """Sample G (`cfg`: its NetworkConfig, `g_variables`: {'params', 'buffers'}) and score it."""
        feats = self.fake_features(cfg, g_variables, key)
        return compute_metrics(self.metrics, feats['pool'], feats['logits_unbiased'], self.real)


def from_training_config(config: Any, workdir: str | os.PathLike) -> tuple[Evaluator | None, str]:
    """(Evaluator, '') for a training run with log.fid_kimg > 0, or (None, why FID is skipped).

    The real set is log.fid_real, else data.path (the demo's generated folder for data.source='demo').
    Unavailable Inception weights or a bad real set are a reason, not an error: training goes on.
    """
    log = config.log
    if not float(log.fid_kimg or 0) > 0:
        return None, 'log.fid_kimg is 0'
    real = str(log.fid_real or '')
    if not real:
        demo = str(config.data.source) == 'demo'
        real = str(config.data.path or (Path(workdir) / 'demo_data' if demo else ''))
    if not real:
        return None, 'no real image set (set log.fid_real)'
    try:
        return Evaluator(real, inception_weights=str(log.inception_weights) or None, num_fake=int(log.fid_num_fake),
                         batch=int(log.fid_batch)), ''
    except (MetricsError, OSError, ValueError) as e:  # weights not available, bad real set
        return None, f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'


__all__ = ['METRICS', 'Evaluator', 'compute_metrics', 'from_training_config', 'parse_metrics']
