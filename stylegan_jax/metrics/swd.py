"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, "Progressive
Growing of GANs", section 5 and appendix): a quality number that needs no downloaded weights.

    metric = SWD(real_images)            # uint8/float NHWC; the real descriptors are computed once
    metric(fake_images)                  # {'swd': mean over levels, 'swd_32': ..., 'swd_16': ...}

What the paper describes, and what is done here:

* Each image set is turned into a Laplacian pyramid, from the full resolution down to 16x16
  (the coarsest level keeps the low-pass image, the others are band-pass: a level minus the
  up-sampled next one; 5-tap binomial filter [1, 4, 6, 4, 1] / 16, mirrored edges).
* From every level of every image, 128 random 7x7 neighbourhoods (all colour channels) are taken:
  147-dimensional descriptors.
* Descriptors are normalised per level and colour channel (mean 0, std 1), then the sliced
  Wasserstein distance between the real and the fake descriptor sets is the mean, over 512 random
  unit directions, of the 1-D Wasserstein-1 distance of the projections; multiplied by 1e3 as the
  paper reports it. Small is similar: the finest level measures edges and fine texture, the
  coarsest the overall colour and layout.

Choices, both documented in the arguments:

* ``normalize='real'`` (default) normalises both sets with the real set's statistics, so a global
  colour cast or contrast change counts; ``'each'`` normalises every set with its own statistics,
  as ProGAN's released code does (then SWD is blind to per-channel affine colour changes).
* The 1-D distances are exact for sets of different sizes (quantile functions integrated over the
  merged breakpoints); for equal sizes this is the paper's mean |sorted(a) - sorted(b)|.

Randomness (patch positions, directions) comes from ``seed``: the same image index gets the same
patch positions in the real and the fake set, so identical sets give exactly 0, and repeated
evaluations of one run use the same directions (changes between them are not sampling noise of
the projections).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ['SWD', 'swd', 'laplacian_pyramid', 'descriptors', 'wasserstein_1d', 'sliced_wasserstein',
           'SCALE']

SCALE = 1e3               # the paper reports SWD x 1e3
PATCH = 7                 # 7x7 neighbourhoods
PER_IMAGE = 128           # descriptors per image and level
NUM_DIRECTIONS = 512      # random projections
MIN_RESOLUTION = 16       # the coarsest pyramid level
_KERNEL = np.array([1, 4, 6, 4, 1], np.float32) / 16


def _filter(x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Separable binomial blur over H and W of NHWC images (mirrored edges)."""
    from scipy.ndimage import convolve1d
    k = _KERNEL * gain
    return convolve1d(convolve1d(x, k, axis=1, mode='mirror'), k, axis=2, mode='mirror')


def _down(x: np.ndarray) -> np.ndarray:
    return _filter(x)[:, ::2, ::2]


def _up(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    out = np.zeros((n, 2 * h, 2 * w, c), x.dtype)
    out[:, ::2, ::2] = x
    return _filter(out, 2.0)  # 2 per axis: zero insertion halves the mean


def laplacian_pyramid(images: np.ndarray, min_resolution: int = MIN_RESOLUTION) -> list[np.ndarray]:
    """[full-res band-pass, ..., min_resolution low-pass] float32 levels of NHWC images."""
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[1] < min_resolution:
        raise ValueError(f'SWD needs square NHWC images of at least {min_resolution}x{min_resolution}, '
                         f'got shape {x.shape}')
    levels = []
    while x.shape[1] > min_resolution:
        small = _down(x)
        levels.append(x - _up(small))
        x = small
    levels.append(x)
    return levels


def _positions(seed: int, level: int, num_images: int, size: int, per_image: int, patch: int) -> np.ndarray:
    """Top-left corners [num_images, per_image, 2]; image i's corners depend on (seed, level, i) only."""
    rng = np.random.default_rng([seed, level])
    corners = rng.integers(0, size - patch + 1, (max(num_images, 1), per_image, 2))
    return corners[:num_images]


def descriptors(level: np.ndarray, corners: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """[N * per_image, patch, patch, C] neighbourhoods of a level at the given corners."""
    n, per_image, _ = corners.shape
    r = np.arange(patch)
    ys = corners[..., 0, None, None] + r[:, None]            # [n, k, patch, 1]
    xs = corners[..., 1, None, None] + r[None, :]            # [n, k, 1, patch]
    img = np.arange(n)[:, None, None, None]
    return level[img, ys, xs].reshape(n * per_image, patch, patch, level.shape[-1])


def _stats(desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per colour channel mean and std over all descriptors and positions."""
    d = desc.astype(np.float64)
    return d.mean(axis=(0, 1, 2)), np.maximum(d.std(axis=(0, 1, 2)), 1e-8)


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact W1 between the empirical distributions of the columns of a [n, k] and b [m, k] -> [k].

    W1 = integral over q in (0, 1) of |F_a^-1(q) - F_b^-1(q)|: both quantile functions are step
    functions, constant between the merged breakpoints i/n and j/m.
    """
    return _w1_rows(np.sort(np.asarray(a).T, axis=-1), np.sort(np.asarray(b).T, axis=-1))


def _w1_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W1 per row of row-sorted a [k, n] and b [k, m] (rows contiguous: sorting is the cost)."""
    n, m = a.shape[-1], b.shape[-1]
    if n == m:
        return np.abs(a - b).mean(axis=-1, dtype=np.float64)
    q = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    width = np.diff(q, prepend=0.0)
    ia = np.minimum(np.ceil(q * n - 1e-9).astype(int) - 1, n - 1)
    ib = np.minimum(np.ceil(q * m - 1e-9).astype(int) - 1, m - 1)
    return np.abs(a[:, ia] - b[:, ib]).astype(np.float64) @ width


def _directions(dim: int, num_directions: int, seed: int) -> np.ndarray:
    """[num_directions, dim] random unit vectors (float32)."""
    dirs = np.random.default_rng([seed, 0x5D]).standard_normal((num_directions, dim)).astype(np.float32)
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, num_directions: int = NUM_DIRECTIONS,
                       seed: int = 0, chunk: int = 128) -> float:
    """Mean over random unit directions of the 1-D W1 of the projections of a [n, d] and b [m, d]."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    dirs = _directions(a.shape[1], num_directions, seed)
    total = 0.0
    for start in range(0, num_directions, chunk):
        d = dirs[start:start + chunk]
        total += float(_w1_rows(np.sort(d @ a.T, axis=-1), np.sort(d @ b.T, axis=-1)).sum())
    return total / num_directions


class SWD:
    """SWD of image sets against one real set, whose descriptors are computed once.

    Args:
      real: NHWC images (uint8 or float; any range, the normalisation removes it), square, at
        least ``min_resolution`` pixels wide.
      per_image, patch, num_directions, min_resolution: the paper's 128, 7, 512, 16.
      normalize: 'real' (both sets by the real statistics) or 'each' (ProGAN's code).
      seed: patch positions and directions.
    """

    def __init__(self, real: np.ndarray, per_image: int = PER_IMAGE, patch: int = PATCH,
                 num_directions: int = NUM_DIRECTIONS, min_resolution: int = MIN_RESOLUTION,
                 normalize: str = 'real', seed: int = 0) -> None:
        if normalize not in ('real', 'each'):
            raise ValueError(f"SWD normalize must be 'real' or 'each', got {normalize!r}")
        if len(real) < 1:
            raise ValueError('SWD needs at least one real image')
        self.per_image, self.patch, self.num_directions = per_image, patch, num_directions
        self.min_resolution, self.normalize, self.seed = min_resolution, normalize, seed
        self.resolution = int(np.shape(real)[1])
        self._real = [self._descriptors(i, lvl) for i, lvl in enumerate(self._pyramid(real))]
        self._real_stats = [_stats(d) for d in self._real]

    def _pyramid(self, images: np.ndarray) -> list[np.ndarray]:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != self.resolution:
            raise ValueError(f'SWD: images must be [N, {self.resolution}, {self.resolution}, C], '
                             f'got {images.shape}')
        return laplacian_pyramid(images, self.min_resolution)

    def _descriptors(self, level_index: int, level: np.ndarray) -> np.ndarray:
        corners = _positions(self.seed, level_index, len(level), level.shape[1], self.per_image, self.patch)
        return descriptors(level, corners, self.patch)

    @property
    def level_names(self) -> list[str]:
        """'swd_32', 'swd_16', ...: one per pyramid level, named by its resolution."""
        return [f'swd_{self.resolution >> i}' for i in range(len(self._real))]

    def __call__(self, fake: np.ndarray) -> dict[str, float]:
        """{'swd': mean over levels, 'swd_<res>': per level}, all x 1e3."""
        out: dict[str, float] = {}
        for i, level in enumerate(self._pyramid(fake)):
            d_fake = self._descriptors(i, level)
            d_real = self._real[i]
            mean_r, std_r = self._real_stats[i]
            mean_f, std_f = (mean_r, std_r) if self.normalize == 'real' else _stats(d_fake)
            a = ((d_real - mean_r) / std_r).reshape(len(d_real), -1)
            b = ((d_fake - mean_f) / std_f).reshape(len(d_fake), -1)
            out[self.level_names[i]] = SCALE * sliced_wasserstein(a, b, self.num_directions, self.seed + i)
        out = {'swd': float(np.mean(list(out.values()))), **out}
        return out


def swd(real: np.ndarray, fake: np.ndarray, **kwargs: Any) -> dict[str, float]:
    """One-off SWD(real, fake); see `SWD` for the arguments."""
    return SWD(real, **kwargs)(fake)
