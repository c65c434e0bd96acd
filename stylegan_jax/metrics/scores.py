"""FID, KID, Inception Score and precision/recall from Inception features (NumPy, float64).

All functions are pure: features in, numbers out. They follow the reference implementations whose
numbers people compare against:

- FID: the Frechet distance of Gaussians fitted to the two feature sets (mean, covariance with n-1
  normalisation), as `pytorch_fid.fid_score.calculate_frechet_distance`. pytorch-fid takes
  `scipy.linalg.sqrtm(sigma1 @ sigma2)`, which is slow and, for rank-deficient covariances (fewer
  images than 2048), noisy: it can return small imaginary parts and even a negative FID of a set
  against itself. Only the trace of the square root is needed, and
  tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), whose argument is symmetric positive semi-definite, so
  two symmetric eigendecompositions give it stably (eigenvalues clipped at 0). `method='sqrtm'`
  reproduces pytorch-fid's computation exactly when wanted.
- KID: the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y/d + 1)^3, averaged over
  `num_subsets` random subsets of m = min(n_real, n_fake, max_subset_size) of each set, drawn without
  replacement (stylegan2-ada-pytorch `kernel_inception_distance`, Binkowski et al. 2018). The std is
  the population std of the per-subset estimates (torch-fidelity reports the same quantity).
- IS: softmax over all 1008 logits, `num_splits` contiguous splits in order (`numpy.array_split`),
  exp(mean_x KL(p(y|x) || p(y))) per split; mean and population std over splits. The original code and
  the StyleGAN metrics feed the logits WITHOUT the fc bias (see `inception.py`, `logits_unbiased`).
- Precision/recall: the k-NN manifold estimate of Kynkaenniemi et al. 2019 (k=3 as in
  stylegan2-ada-pytorch): a sample is inside the other set's manifold when it lies within the k-th
  nearest-neighbour radius (self excluded) of at least one of that set's samples. Computed here on
  Inception pool3 features; the paper and stylegan2-ada-pytorch use VGG16 features, so absolute
  numbers are not comparable with theirs (relative comparisons between runs are).
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _features64(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f'{name}: expected a [N, D] feature array, got shape {x.shape}')
    return x


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (n-1 normalisation, `np.cov(rowvar=False)`) in float64."""
    x = _features64(features, 'features')
    if len(x) < 2:
        raise ValueError(f'need at least 2 feature vectors for a covariance, got {len(x)}')
    mu = x.mean(axis=0)
    xc = x - mu
    return mu, (xc.T @ xc) / (len(x) - 1)


def _drop_roundoff(w: np.ndarray) -> np.ndarray:
    """Zero the eigenvalues that are round-off: below the usual numerical-rank tolerance D * eps * max.

    With fewer images than feature dimensions the covariances are singular; their ~D zero eigenvalues
    come out of eigh as +-1e-13-ish noise whose square roots would add up to ~1e-3 of FID.
    """
    tol = len(w) * np.finfo(np.float64).eps * max(float(w.max(initial=0.0)), 0.0)
    return np.where(w > tol, w, 0.0)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (round-off eigenvalues set to 0)."""
    w, v = np.linalg.eigh((s + s.T) * 0.5)
    return (v * np.sqrt(_drop_roundoff(w))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrtm(sigma1 @ sigma2) for covariance matrices, via tr sqrt(S1^1/2 S2 S1^1/2) (stable)."""
    r = _sqrt_psd(np.asarray(sigma1, np.float64))
    m = r @ np.asarray(sigma2, np.float64) @ r
    return float(np.sqrt(_drop_roundoff(np.linalg.eigvalsh((m + m.T) * 0.5))).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = 'eigh', eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), in float64.

    method 'eigh' (default) is the stable symmetric form; 'sqrtm' is pytorch-fid's exact code path
    (scipy.linalg.sqrtm, eps*I added if it is not finite, imaginary part dropped).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f'mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}')
    diff = mu1 - mu2
    if method == 'eigh':
        tr_covmean = trace_sqrt_product(s1, s2)
    elif method == 'sqrtm':
        import scipy.linalg

        covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s1)) * eps
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                raise ValueError(f'sqrtm has a large imaginary component {np.max(np.abs(covmean.imag)):.3g}')
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    else:
        raise ValueError(f"unknown method {method!r} (expected 'eigh' or 'sqrtm')")
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_features(real: np.ndarray, fake: np.ndarray, method: str = 'auto') -> float:
    """FID between two feature sets [N, D] (statistics in float64).

    method 'auto' uses the exact low-rank form when n_real * n_fake <= D^2 (small sets, e.g. tests
    and quick checks): with A, B the centred features scaled by 1/sqrt(n-1), S1 = A^T A and
    S2 = B^T B, the nonzero eigenvalues of S1 S2 are the squared singular values of A B^T, so
    tr sqrt(S1 S2) is the nuclear norm of the small matrix A B^T. Otherwise it is `frechet_distance`
    with 'eigh'; 'eigh' and 'sqrtm' force that method.
    """
    real, fake = _features64(real, 'real'), _features64(fake, 'fake')
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f'feature sizes differ: {real.shape[1]} vs {fake.shape[1]}')
    if method == 'auto' and len(real) * len(fake) > real.shape[1] ** 2:
        method = 'eigh'
    if method != 'auto':
        return frechet_distance(*feature_stats(real), *feature_stats(fake), method=method)
    if min(len(real), len(fake)) < 2:
        raise ValueError(f'FID needs at least 2 images per set, got {len(real)} and {len(fake)}')
    mu1, mu2 = real.mean(0), fake.mean(0)
    a = (real - mu1) / np.sqrt(len(real) - 1)
    b = (fake - mu2) / np.sqrt(len(fake) - 1)
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * tr_covmean)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets under the cubic polynomial kernel (float64)."""
    x, y = _features64(x, 'x'), _features64(y, 'y')
    m = len(x)
    if len(y) != m or m < 2:
        raise ValueError(f'need two sets of the same size >= 2, got {len(x)} and {len(y)}')
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kid(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased polynomial-kernel MMD^2 over random subsets (KID).

    Each subset takes m = min(n_real, n_fake, max_subset_size) rows of each set without replacement,
    drawn from `numpy.random.default_rng(seed)`; with n_real == n_fake <= max_subset_size every subset
    is the whole set and the result does not depend on the seed.
    """
    real, fake = _features64(real, 'real'), _features64(fake, 'fake')
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f'feature sizes differ: {real.shape[1]} vs {fake.shape[1]}')
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise ValueError(f'KID needs at least 2 images per set, got {len(real)} real and {len(fake)} fake')
    if num_subsets < 1:
        raise ValueError(f'num_subsets must be >= 1, got {num_subsets}')
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        values[i] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def inception_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """(mean, population std) of exp(E_x KL(p(y|x) || p(y))) over contiguous splits, in float64.

    `logits` are pre-softmax class scores [N, K]; pass the Inception logits without the fc bias
    to match the original IS code and the StyleGAN metrics.
    """
    logits = _features64(logits, 'logits')
    if not 1 <= num_splits <= len(logits):
        raise ValueError(f'num_splits must be in 1..{len(logits)} (number of images), got {num_splits}')
    scores = []
    for part in np.array_split(_log_softmax(logits), num_splits):
        # log p(y) = log mean_x p(y|x), computed in log space so tiny probabilities do not underflow.
        m = part.max(axis=0)
        log_py = m + np.log(np.exp(part - m).mean(axis=0))
        kl = (np.exp(part) * (part - log_py)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _pairwise_sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _blockwise(a: np.ndarray, b: np.ndarray, reduce: Callable[[np.ndarray], np.ndarray],
               block: int) -> np.ndarray:
    """reduce(sqdist(a_block, b)) for row blocks of a, concatenated (bounded memory)."""
    return np.concatenate([reduce(_pairwise_sqdist(a[i:i + block], b)) for i in range(0, len(a), block)])


def knn_radii(features: np.ndarray, k: int = 3, block: int = 1024) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row (the sample itself excluded)."""
    x = _features64(features, 'features')
    if not 1 <= k < len(x):
        raise ValueError(f'k must be in 1..{len(x) - 1} for {len(x)} samples, got {k}')
    # Column k of the sorted distances: index 0 is the sample itself (distance 0).
    return _blockwise(x, x, lambda d: np.partition(d, k, axis=1)[:, k], block)


def manifold_coverage(ref: np.ndarray, radii: np.ndarray, query: np.ndarray, block: int = 1024) -> float:
    """Fraction of query rows within radius (squared) of at least one ref row."""
    ref, query = _features64(ref, 'ref'), _features64(query, 'query')
    return float(_blockwise(query, ref, lambda d: (d <= radii[None, :]).any(axis=1), block).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, block: int = 1024) -> tuple[float, float]:
    """Improved precision (fake inside the real manifold) and recall (real inside the fake manifold)."""
    real, fake = _features64(real, 'real'), _features64(fake, 'fake')
    precision = manifold_coverage(real, knn_radii(real, k, block), fake, block)
    recall = manifold_coverage(fake, knn_radii(fake, k, block), real, block)
    return precision, recall


__all__ = ['feature_stats', 'fid_from_features', 'frechet_distance', 'inception_score', 'kid', 'knn_radii',
           'manifold_coverage', 'mmd2_unbiased', 'precision_recall', 'trace_sqrt_product']
