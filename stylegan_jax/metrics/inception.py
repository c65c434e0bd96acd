"""The FID Inception-V3 in Flax (the pytorch-fid / StyleGAN-metrics variant), its weights, and batched features.

Network. This is the Inception-V3 graph that TF's FID code froze in 2015 ("pool_3", 2048-d) as ported
by pytorch-fid (`FIDInceptionA/C/E_1/E_2`). It differs from torchvision's Inception-V3 in the pooling
branch of blocks A, C and the first E block, where the 3x3 average pooling (stride 1, pad 1) does NOT
count the padded zeros, and in the second E block (`Mixed_7c`), which max-pools instead. Every conv is
bias-free and followed by BatchNorm (eps 0.001, running statistics) and ReLU; BatchNorm is folded
into a per-channel scale/shift at load time. The head has 1008 classes (the 2015 graph's label set).

Input. uint8 RGB NHWC -> float /255 in [0, 1] -> resized to 299x299 if needed -> 2x - 1. The resize
is pytorch-fid's: `F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)` without
antialiasing, on the [0, 1] floats. `jax.image.resize(..., 'linear')` antialiases when it
downsamples (its default), so it gives different numbers for images above 299 px; `resize_bilinear`
below reimplements torch's formula instead (half-pixel centres, source index clamped at 0, the two
nearest source pixels). Note the original TF FID code resized inside the graph with its own bilinear
op; pytorch-fid (and therefore this code) differs from it slightly for non-299 inputs.

Weights. The standard file is pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, a PyTorch state
dict. It is read with the torch-free allow-list reader (`stylegan_jax.convert.unpickle.load_torch`), so
no code from the file runs. `resolve_weights` downloads it once into a cache directory
($STYLEGAN_JAX_CACHE or ~/.cache/stylegan_jax) and checks the SHA-256 prefix in its name (torch hub's
`name-<first 8+ hex digits of sha256>.ext` convention); a local file can be passed instead.

All convolutions and dots use `Precision.HIGHEST` so that TF32 on GPUs does not move the features
by more than the ~1e-4 the tests hold them to.
"""
from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax.cli_errors import CLIError
from stylegan_jax.sample import to_uint8
from stylegan_jax.user_cache import cache_dir, sha256_file

FID_WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                   'pt_inception-2015-12-05-6726825d.pth')
# torch hub naming convention: the hex digits after the last '-' are the start of the file's SHA-256.
FID_WEIGHTS_SHA256_PREFIX = '6726825d'
FID_WEIGHTS_NAME = 'pt_inception-2015-12-05-6726825d.pth'
INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3
HIGHEST = jax.lax.Precision.HIGHEST

Params = dict[str, Any]


class MetricsError(CLIError, ValueError):
    """Bad input for the metrics (a file, a folder, a weights file); the message names it and why."""


# --------------------------------------------------------------------------- layers

class ConvBN(nn.Module):
    """Bias-free conv + (folded) BatchNorm + ReLU; torch `BasicConv2d` with padding given per side."""
    features: int
    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param('kernel', nn.initializers.lecun_normal(),
                            (*self.kernel, x.shape[-1], self.features))
        scale = self.param('scale', nn.initializers.ones, (self.features,))
        shift = self.param('shift', nn.initializers.zeros, (self.features,))
        ph, pw = self.padding
        y = jax.lax.conv_general_dilated(x, kernel, self.strides, ((ph, ph), (pw, pw)),
                                         dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=HIGHEST)
        return jax.nn.relu(y * scale + shift)


def max_pool(x: jax.Array, window: int, stride: int, pad: int = 0) -> jax.Array:
    """torch `max_pool2d` (floor mode; padding never wins a max)."""
    return nn.max_pool(x, (window, window), (stride, stride), ((pad, pad), (pad, pad)))


def avg_pool_exclude_pad(x: jax.Array) -> jax.Array:
    """3x3 / stride 1 / pad 1 average that divides by the number of real (unpadded) pixels.

    This is `avg_pool2d(..., count_include_pad=False)`, the FID graph's pooling in blocks A, C, E_1.
    """
    window, strides, pad = (1, 3, 3, 1), (1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
    # Counts depend only on the spatial shape: a constant XLA folds at compile time.
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
    return total / count


# --------------------------------------------------------------------------- blocks

class InceptionA(nn.Module):
    """Mixed_5b/5c/5d (FID variant: pooling branch excludes padding)."""
    pool_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = ConvBN(64, (1, 1), name='branch1x1')(x)
        b5 = ConvBN(48, (1, 1), name='branch5x5_1')(x)
        b5 = ConvBN(64, (5, 5), padding=(2, 2), name='branch5x5_2')(b5)
        b3 = ConvBN(64, (1, 1), name='branch3x3dbl_1')(x)
        b3 = ConvBN(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(b3)
        b3 = ConvBN(96, (3, 3), padding=(1, 1), name='branch3x3dbl_3')(b3)
        bp = ConvBN(self.pool_features, (1, 1), name='branch_pool')(avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Mixed_6a: grid reduction 35 -> 17."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = ConvBN(384, (3, 3), strides=(2, 2), name='branch3x3')(x)
        bd = ConvBN(64, (1, 1), name='branch3x3dbl_1')(x)
        bd = ConvBN(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
        bd = ConvBN(96, (3, 3), strides=(2, 2), name='branch3x3dbl_3')(bd)
        return jnp.concatenate([b3, bd, max_pool(x, 3, 2)], axis=-1)


class InceptionC(nn.Module):
    """Mixed_6b..6e: factorised 7x7 convolutions (FID variant: pooling branch excludes padding)."""
    c7: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c7 = self.c7
        b1 = ConvBN(192, (1, 1), name='branch1x1')(x)
        b7 = ConvBN(c7, (1, 1), name='branch7x7_1')(x)
        b7 = ConvBN(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
        b7 = ConvBN(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
        bd = ConvBN(c7, (1, 1), name='branch7x7dbl_1')(x)
        bd = ConvBN(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
        bd = ConvBN(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
        bd = ConvBN(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
        bd = ConvBN(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
        bp = ConvBN(192, (1, 1), name='branch_pool')(avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """Mixed_7a: grid reduction 17 -> 8."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = ConvBN(192, (1, 1), name='branch3x3_1')(x)
        b3 = ConvBN(320, (3, 3), strides=(2, 2), name='branch3x3_2')(b3)
        b7 = ConvBN(192, (1, 1), name='branch7x7x3_1')(x)
        b7 = ConvBN(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
        b7 = ConvBN(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
        b7 = ConvBN(192, (3, 3), strides=(2, 2), name='branch7x7x3_4')(b7)
        return jnp.concatenate([b3, b7, max_pool(x, 3, 2)], axis=-1)


class InceptionE(nn.Module):
    """Mixed_7b (pool='avg', excluding padding) and Mixed_7c (pool='max'): the FID variants E_1 / E_2."""
    pool: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = ConvBN(320, (1, 1), name='branch1x1')(x)
        b3 = ConvBN(384, (1, 1), name='branch3x3_1')(x)
        b3 = jnp.concatenate([ConvBN(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
                              ConvBN(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)], axis=-1)
        bd = ConvBN(448, (1, 1), name='branch3x3dbl_1')(x)
        bd = ConvBN(384, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
        bd = jnp.concatenate([ConvBN(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
                              ConvBN(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)], axis=-1)
        pooled = avg_pool_exclude_pad(x) if self.pool == 'avg' else max_pool(x, 3, 1, pad=1)
        bp = ConvBN(192, (1, 1), name='branch_pool')(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3FID(nn.Module):
    """FID Inception-V3: [N, 299, 299, 3] floats in [-1, 1] -> pool3 features, logits, unbiased logits."""

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        x = ConvBN(32, (3, 3), strides=(2, 2), name='Conv2d_1a_3x3')(x)
        x = ConvBN(32, (3, 3), name='Conv2d_2a_3x3')(x)
        x = ConvBN(64, (3, 3), padding=(1, 1), name='Conv2d_2b_3x3')(x)
        x = max_pool(x, 3, 2)
        x = ConvBN(80, (1, 1), name='Conv2d_3b_1x1')(x)
        x = ConvBN(192, (3, 3), name='Conv2d_4a_3x3')(x)
        x = max_pool(x, 3, 2)
        x = InceptionA(32, name='Mixed_5b')(x)
        x = InceptionA(64, name='Mixed_5c')(x)
        x = InceptionA(64, name='Mixed_5d')(x)
        x = InceptionB(name='Mixed_6a')(x)
        x = InceptionC(128, name='Mixed_6b')(x)
        x = InceptionC(160, name='Mixed_6c')(x)
        x = InceptionC(160, name='Mixed_6d')(x)
        x = InceptionC(192, name='Mixed_6e')(x)
        x = InceptionD(name='Mixed_7a')(x)
        x = InceptionE('avg', name='Mixed_7b')(x)
        x = InceptionE('max', name='Mixed_7c')(x)
        pool = jnp.mean(x, axis=(1, 2))
        w = self.param('fc_kernel', nn.initializers.lecun_normal(), (NUM_FEATURES, NUM_LOGITS))
        b = self.param('fc_bias', nn.initializers.zeros, (NUM_LOGITS,))
        # IS (original code, StyleGAN metrics) uses the logits without the bias; both are cheap.
        unbiased = jnp.dot(pool, w, precision=HIGHEST)
        return {'pool': pool, 'logits': unbiased + b, 'logits_unbiased': unbiased}


# --------------------------------------------------------------------------- weights

@functools.lru_cache(maxsize=1)
def _param_shapes() -> dict[str, tuple[int, ...]]:
    """Flat 'a/b/c' -> shape of every parameter of InceptionV3FID (no computation is run)."""
    shapes = jax.eval_shape(lambda: InceptionV3FID().init(jax.random.PRNGKey(0),
                                                           jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))))
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(shapes['params'])[0]:
        flat['/'.join(p.key for p in path)] = tuple(leaf.shape)
    return flat


def _set(tree: dict, path: str, value: np.ndarray) -> None:
    *parents, leaf = path.split('/')
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def params_from_state_dict(sd: dict[str, np.ndarray], source: str = 'state dict') -> Params:
    """Map a pytorch-fid `FIDInceptionA/...` state dict (numpy arrays) to our parameter tree.

    Conv weights [out, in, kh, kw] -> HWIO kernels; BatchNorm (eps 0.001) folded into
    scale = gamma / sqrt(var + eps) and shift = beta - mean * scale, computed in float64.
    Raises MetricsError naming the first missing or mis-shaped tensor.
    """
    expected = _param_shapes()
    params: dict = {}
    convs = sorted({k.rsplit('/', 1)[0] for k in expected if k.endswith('/kernel')})
    for conv in convs:
        torch_name = conv.replace('/', '.')
        keys = {f: f'{torch_name}.{f}' for f in ('conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean',
                                                   'bn.running_var')}
        for k in keys.values():
            if k not in sd:
                raise MetricsError(f'{source}: not an FID Inception state dict (missing {k})')
        w = np.asarray(sd[keys['conv.weight']], np.float32)
        kshape = expected[f'{conv}/kernel']
        if w.shape != (kshape[3], kshape[2], kshape[0], kshape[1]):
            raise MetricsError(f'{source}: {keys["conv.weight"]} has shape {w.shape}, expected '
                               f'{(kshape[3], kshape[2], kshape[0], kshape[1])}')
        gamma, beta, mean, var = (np.asarray(sd[keys[f]], np.float64)
                                  for f in ('bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'))
        if not gamma.shape == beta.shape == mean.shape == var.shape == (kshape[3],):
            raise MetricsError(f'{source}: BatchNorm of {torch_name} does not have {kshape[3]} channels')
        scale = gamma / np.sqrt(var + BN_EPS)
        _set(params, f'{conv}/kernel', np.ascontiguousarray(w.transpose(2, 3, 1, 0)))
        _set(params, f'{conv}/scale', scale.astype(np.float32))
        _set(params, f'{conv}/shift', (beta - mean * scale).astype(np.float32))
    for k, shape in (('fc.weight', (NUM_LOGITS, NUM_FEATURES)), ('fc.bias', (NUM_LOGITS,))):
        if k not in sd:
            raise MetricsError(f'{source}: not an FID Inception state dict (missing {k})')
        if tuple(np.shape(sd[k])) != shape:
            raise MetricsError(f'{source}: {k} has shape {tuple(np.shape(sd[k]))}, expected {shape}')
    params['fc_kernel'] = np.ascontiguousarray(np.asarray(sd['fc.weight'], np.float32).T)
    params['fc_bias'] = np.asarray(sd['fc.bias'], np.float32)
    return params


def load_params(path: str | os.PathLike) -> Params:
    """Read an FID Inception weights file (PyTorch state dict, zip or legacy format) without torch."""
    from stylegan_jax.convert.unpickle import CheckpointFormatError, UnsafePickleError, load_torch

    path = Path(path)
    if not path.is_file():
        raise MetricsError(f'{path}: Inception weights file not found')
    try:
        sd = load_torch(path)
    except (CheckpointFormatError, UnsafePickleError) as e:
        raise MetricsError(f'{path}: cannot read Inception weights ({e})') from None
    if isinstance(sd, dict) and 'state_dict' in sd and isinstance(sd['state_dict'], dict):
        sd = sd['state_dict']
    if not isinstance(sd, dict):
        raise MetricsError(f'{path}: not a state dict (got {type(sd).__name__})')
    return params_from_state_dict(sd, str(path))


# --------------------------------------------------------------------------- download / cache

def download(url: str, dest: str | os.PathLike, sha256_prefix: str | None = None,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Download url to dest atomically (temp file in the same folder, then rename), checking the hash.

    Raises MetricsError with a one-line reason when offline, on HTTP errors, or on a hash mismatch;
    a failed download never leaves a partial file at dest.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + '.', suffix='.part', dir=dest.parent)
    h = hashlib.sha256()
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, os.fdopen(fd, 'wb') as out:
                total = int(resp.headers.get('Content-Length') or 0) or None
                bar = _progress(total=total, desc=f'downloading {dest.name}', unit='B', unit_scale=True,
                                disable=not progress)
                while block := resp.read(1 << 20):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
                bar.close()
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, 'reason', None) or e
            raise MetricsError(f'cannot download {url} ({reason}): pass --inception-weights FILE') from None
        digest = h.hexdigest()
        if sha256_prefix and not digest.startswith(sha256_prefix.lower()):
            raise MetricsError(f'cannot download {url}: SHA-256 {digest[:16]}... does not start with '
                               f'{sha256_prefix} (corrupted or changed file); pass --inception-weights FILE')
        os.replace(tmp, dest)
        tmp = None
        return dest
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def resolve_weights(path: str | os.PathLike | None = None, url: str = FID_WEIGHTS_URL,
                    sha256_prefix: str | None = FID_WEIGHTS_SHA256_PREFIX, progress: bool = True) -> Path:
    """The weights file to use: `path` if given, else the cached download of `url` (fetched once)."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise MetricsError(f'{p}: Inception weights file not found')
        return p
    dest = cache_dir() / url.rsplit('/', 1)[-1]
    if dest.is_file():
        return dest
    return download(url, dest, sha256_prefix, progress=progress)


def _progress(**kwargs: Any) -> Any:
    from tqdm import tqdm
    return tqdm(file=sys.stderr, **kwargs)


# --------------------------------------------------------------------------- preprocessing

def _linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of torch's bilinear (align_corners=False) along one axis.

    Mirrors aten's `area_pixel_compute_source_index` in float32: src = (dst + 0.5) * in/out - 0.5,
    clamped below at 0; the neighbour index is clamped to the last pixel.
    """
    scale = np.float32(in_size / out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, (np.float32(1) - w1).astype(np.float32), w1


def resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Resize NHWC floats like `torch.nn.functional.interpolate(mode='bilinear', align_corners=False)`.

    No antialiasing (unlike `jax.image.resize`'s default), so downsampling matches pytorch-fid.
    """
    out = x
    for axis, new in ((1, size[0]), (2, size[1])):
        old = out.shape[axis]
        if old == new:
            continue
        i0, i1, w0, w1 = _linear_taps(old, new)
        shape = [1] * out.ndim
        shape[axis] = new
        out = (jnp.take(out, i0, axis=axis) * w0.reshape(shape)
               + jnp.take(out, i1, axis=axis) * w1.reshape(shape))
    return out


def preprocess(images: jax.Array) -> jax.Array:
    """uint8 RGB NHWC (any size) -> float32 [-1, 1] at 299x299, the pytorch-fid way."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f'expected [N, H, W, 3] RGB images, got shape {images.shape}')
    x = images.astype(jnp.float32) / 255.0
    x = resize_bilinear(x, (INPUT_SIZE, INPUT_SIZE))
    return 2.0 * x - 1.0


@jax.jit
def _forward(params: Params, images: jax.Array) -> dict[str, jax.Array]:
    if images.dtype != jnp.uint8:
        images = to_uint8(images)  # the generator-output quantisation stylegan-sample writes to PNG
    return InceptionV3FID().apply({'params': params}, preprocess(images))


def pool_features(params: Params, images: jax.Array) -> jax.Array:
    """Differentiable pool3 features [N, 2048] of float images in [-1, 1] (no uint8 quantisation).

    The same preprocessing as `preprocess` otherwise ([0, 1] floats resized the pytorch-fid way);
    used as a perceptual distance (projection, PPL) where gradients must flow to the image.
    """
    x = resize_bilinear((images.astype(jnp.float32) + 1.0) * 0.5, (INPUT_SIZE, INPUT_SIZE))
    return InceptionV3FID().apply({'params': params}, 2.0 * x - 1.0)['pool']


# --------------------------------------------------------------------------- batched extraction

class FeatureExtractor:
    """Jitted, batched pool3 features / logits on the default device.

    Every call is padded to `batch_size` so one compiled function serves all batches of a given
    image size. Images may be uint8 or float in [-1, 1] (quantised to uint8 first, as the StyleGAN
    metrics do with generator output), NHWC, any resolution (resized to 299 like pytorch-fid).
    """

    def __init__(self, params: Params, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.params = jax.device_put(params)
        self.batch_size = int(batch_size)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, batch_size: int = 32) -> 'FeatureExtractor':
        """Load the weights (`path`, or the cached download of the standard file)."""
        return cls(load_params(resolve_weights(path)), batch_size)

    def device_batch(self, images: Any) -> dict[str, jax.Array]:
        """Outputs for one batch of <= batch_size images, left on the device (no host copy)."""
        n = images.shape[0]
        if n > self.batch_size:
            raise ValueError(f'batch of {n} images exceeds batch_size {self.batch_size}')
        if n < self.batch_size:
            pad = jnp.zeros((self.batch_size - n, *images.shape[1:]), images.dtype)
            images = jnp.concatenate([jnp.asarray(images), pad])
        out = _forward(self.params, images)
        return {k: v[:n] for k, v in out.items()}

    def __call__(self, images: Any) -> dict[str, np.ndarray]:
        """pool [N, 2048] and logits_unbiased [N, 1008] (float32 numpy) for any number of images."""
        return self.extract([images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)],
                            progress=False)

    def extract(self, batches: Iterable[Any], total: int | None = None, progress: bool = True,
                desc: str = 'inception', keys: Sequence[str] = ('pool', 'logits_unbiased')) -> dict[str, np.ndarray]:
        """Run batches (each [b, H, W, 3], b arbitrary) through the network, in order; numpy outputs."""
        acc: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        bar = _progress(total=total, desc=desc, unit='img', disable=not progress)
        for batch in _rebatch(batches, self.batch_size):
            out = self.device_batch(batch)
            for k in keys:
                acc[k].append(np.asarray(out[k]))
            bar.update(len(batch))
        bar.close()
        return {k: (np.concatenate(v) if v else np.zeros((0, NUM_FEATURES if k == 'pool' else NUM_LOGITS),
                                                            np.float32)) for k, v in acc.items()}


def _rebatch(batches: Iterable[Any], size: int) -> Iterator[Any]:
    """Re-chunk a stream of image batches into batches of at most `size` of one shape, keeping order."""
    pending: list[Any] = []
    count = 0
    for b in batches:
        b = np.asarray(b) if not isinstance(b, jax.Array) else b
        if b.ndim == 3:
            b = b[None]
        start = 0
        while start < len(b):
            if pending and pending[0].shape[1:] != b.shape[1:]:
                yield _cat(pending)
                pending, count = [], 0
            take = min(size - count, len(b) - start)
            pending.append(b[start:start + take])
            count += take
            start += take
            if count == size:
                yield _cat(pending)
                pending, count = [], 0
    if pending:
        yield _cat(pending)


def _cat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if any(isinstance(p, jax.Array) for p in parts):
        return jnp.concatenate([jnp.asarray(p) for p in parts])
    return np.concatenate(parts)


def init_params(key: jax.Array) -> Params:
    """Random parameters of the right shapes (tests, benchmarks)."""
    return InceptionV3FID().init(key, jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))['params']


__all__ = ['FID_WEIGHTS_URL', 'FID_WEIGHTS_SHA256_PREFIX', 'FeatureExtractor', 'InceptionV3FID', 'MetricsError',
           'cache_dir', 'download', 'init_params', 'load_params', 'params_from_state_dict',
           'pool_features', 'preprocess', 'resize_bilinear', 'resolve_weights', 'sha256_file']
