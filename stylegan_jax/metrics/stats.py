"""Inception feature statistics of a (real) image set, cached to a file.

A statistics file is an `.npz` (no pickles) with
  mu [2048] float64, sigma [2048, 2048] float64   -- for FID (covariance with n-1 normalisation),
  features [n, 2048] float32                       -- pool3 features for KID and precision/recall
                                                      (all of them, or a seeded random subset of
                                                      `max_features` rows for very large sets),
  meta                                             -- a JSON string: format version, source
                                                      description and fingerprint, weights SHA-256,
                                                      number of images, cache key.
The cache key hashes the source fingerprint (folder: relative paths, sizes and mtimes; TFDS:
dataset_info.json; both plus the resolved path), the number of images used, the SHA-256 of the
Inception weights file and `STATS_VERSION` (bumped whenever preprocessing changes), so a stale file
is never reused. The default cache folder is `<cache_dir()>/fid_stats` (see `inception.cache_dir`).
Files are written atomically (temporary file + rename).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stylegan_jax.metrics.inception import NUM_FEATURES, FeatureExtractor, MetricsError, cache_dir
from stylegan_jax.metrics.sources import ImageSource

STATS_VERSION = 1


@dataclasses.dataclass
class FeatureStats:
    """mu/sigma (float64) of `num_images` pool3 features, the features themselves (float32) and metadata."""
    mu: np.ndarray
    sigma: np.ndarray
    num_images: int
    features: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def has_all_features(self) -> bool:
        """True when `features` holds every image's features (not a subset)."""
        return self.features is not None and len(self.features) == self.num_images

    @classmethod
    def from_features(cls, features: np.ndarray, meta: dict[str, Any] | None = None,
                      max_features: int | None = None, seed: int = 0) -> 'FeatureStats':
        """Statistics of [n, D] features; keeps at most `max_features` rows (seeded random subset)."""
        features = np.asarray(features)
        if features.ndim != 2 or len(features) < 2:
            raise MetricsError(f'need at least 2 feature vectors [n, D] for statistics, got shape {features.shape}')
        mu, sigma = mean_cov(features)
        kept = features.astype(np.float32)
        if max_features is not None and len(kept) > max_features:
            idx = np.sort(np.random.default_rng(seed).choice(len(kept), max_features, replace=False))
            kept = kept[idx]
        return cls(mu, sigma, len(features), kept, dict(meta or {}))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the .npz atomically (a crash never leaves a half-written file at `path`)."""
        path = Path(path)
        if path.suffix != '.npz':
            raise MetricsError(f'{path}: statistics files must end in .npz')
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, 'version': STATS_VERSION, 'num_images': int(self.num_images)}
        arrays = {'mu': self.mu.astype(np.float64), 'sigma': self.sigma.astype(np.float64),
                  'meta': np.array(json.dumps(meta, sort_keys=True))}
        if self.features is not None:
            arrays['features'] = self.features.astype(np.float32)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + '.', suffix='.tmp.npz', dir=path.parent)
        try:
            with os.fdopen(fd, 'wb') as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> 'FeatureStats':
        """Read a statistics .npz; MetricsError naming the file if it is not one."""
        path = Path(path)
        if not path.is_file():
            raise MetricsError(f'{path}: statistics file not found')
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ('mu', 'sigma', 'meta') if k not in z.files]
                if missing:
                    raise MetricsError(f'{path}: not a statistics file (missing {", ".join(missing)})')
                mu, sigma = z['mu'], z['sigma']
                meta = json.loads(str(z['meta']))
                feats = z['features'] if 'features' in z.files else None
        except MetricsError:
            raise
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise MetricsError(f'{path}: cannot read statistics file ({e})') from None
        d = mu.shape[0] if mu.ndim == 1 else -1
        if mu.ndim != 1 or sigma.shape != (d, d) or (feats is not None and (feats.ndim != 2 or feats.shape[1] != d)):
            raise MetricsError(f'{path}: inconsistent shapes mu {mu.shape}, sigma {sigma.shape}'
                               f'{"" if feats is None else f", features {feats.shape}"}')
        if meta.get('version') != STATS_VERSION:
            raise MetricsError(f'{path}: statistics format version {meta.get("version")}, expected {STATS_VERSION} '
                               f'(recompute it)')
        return cls(mu, sigma, int(meta.get('num_images', 0)), feats, meta)


def mean_cov(features: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (n-1) in float64, accumulated in chunks so big float32 sets are not copied."""
    n = len(features)
    if n < 2:
        raise MetricsError(f'need at least 2 images for a covariance, got {n}')
    mu = np.zeros(features.shape[1])
    for i in range(0, n, chunk):
        mu += features[i:i + chunk].astype(np.float64).sum(0)
    mu /= n
    sigma = np.zeros((features.shape[1], features.shape[1]))
    for i in range(0, n, chunk):
        xc = features[i:i + chunk].astype(np.float64) - mu
        sigma += xc.T @ xc
    return mu, sigma / (n - 1)


def cache_key(source_fingerprint: str, weights_sha256: str, num_images: int) -> str:
    """Hex key identifying statistics of these images under these weights and this code version."""
    text = json.dumps({'source': source_fingerprint, 'weights': weights_sha256, 'num': int(num_images),
                       'version': STATS_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_stats_dir() -> Path:
    """<cache_dir()>/fid_stats."""
    return cache_dir() / 'fid_stats'


def compute_stats(source: ImageSource, extractor: FeatureExtractor, weights_sha256: str,
                  num: int | None = None, cache: bool = True, stats_dir: str | os.PathLike | None = None,
                  max_features: int | None = 50000, progress: bool = True, desc: str = 'real') -> FeatureStats:
    """Statistics of `source` (its first `num` images), from the cache when a matching file exists.

    With cache=True a computed result is saved to `<stats_dir>/<key>.npz`; `meta['cache_file']`
    says where it came from or went.
    """
    n = source.count(num)
    key = cache_key(source.fingerprint(), weights_sha256, n)
    path = Path(stats_dir) if stats_dir is not None else default_stats_dir()
    path = path / f'{key[:40]}.npz'
    if cache and path.is_file():
        try:
            st = FeatureStats.load(path)
            if st.meta.get('key') == key:
                st.meta['cache_file'] = str(path)
                st.meta['from_cache'] = True
                return st
        except MetricsError:
            pass  # a damaged cache file is recomputed and replaced
    out = extractor.extract(source.batches(extractor.batch_size, num), total=n, progress=progress, desc=desc,
                            keys=('pool',))
    if len(out['pool']) != n:
        raise MetricsError(f'{source.description}: expected {n} images, read {len(out["pool"])}')
    meta = {'source': source.description, 'fingerprint': source.fingerprint(), 'weights_sha256': weights_sha256,
            'key': key, 'feature_dim': NUM_FEATURES}
    st = FeatureStats.from_features(out['pool'], meta, max_features=max_features)
    if cache:
        try:
            st.save(path)
            st.meta['cache_file'] = str(path)
        except OSError:
            pass  # an unwritable cache only costs time on the next run
    st.meta['from_cache'] = False
    return st


__all__ = ['FeatureStats', 'STATS_VERSION', 'cache_key', 'compute_stats', 'default_stats_dir', 'mean_cov']
