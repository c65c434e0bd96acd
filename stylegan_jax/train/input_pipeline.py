"""Training input: TFDS shards from data_prep, an image folder, or the built-in demo portraits.

``create_input_iter`` returns an infinite iterator of per-process batches
``{'image': uint8 [B, R, R, 3] NHWC, 'label': float32 [B, c_dim] one-hot}``.

Determinism and resume. The per-process example stream is a concatenation of epochs. Epoch ``e``
is the process's examples shuffled by ``tf.data`` with a buffer of ``min(shuffle_buffer, n)`` and a
seed derived from ``(seed, e)`` only (with a buffer >= n that is a uniform random permutation),
and the x-flip of the example at stream position ``i`` is a stateless draw from ``(seed, i)``.
So the stream is a pure function of ``(seed, dataset, shard)``, and ``start_step = k`` starts
it at position ``k * shard_batch``: epoch ``pos // n`` at offset ``pos % n``, without replaying
the earlier epochs. A resumed run therefore sees exactly the batches an uninterrupted run would.

Shards: the data is split into ``process_count * local_shards`` equal shards (TFDS with
``tfds.split_for_jax_process``, folders ``files[i::count]``, remainders dropped), each with its own
stream as above; process ``p`` reads shards ``p * local_shards .. (p + 1) * local_shards - 1`` and
concatenates their batches. Training passes ``local_shards`` = its local device count, so there is one
shard per device and 2 processes x 2 devices read exactly what 1 process x 4 devices reads. Each
process yields ``global_batch_size // process_count`` images per batch.

Images are centre-cropped to a square and resized to ``data.resolution`` when needed (area
filter when shrinking, Lanczos-3 when enlarging). Decoded images are cached in memory when the
whole local dataset fits in ``_CACHE_BYTES``; otherwise files are re-read every epoch.

TFDS datasets (from ``data-prep build``) have features image (JPEG), label (ClassLabel), kind
(ClassLabel ['painting', 'photo']) and source (Text). ``data.photo_ratio`` (TFDS sets, and the demo folders whose manifest records kinds) keeps the
kinds at ``photos / (photos + paintings) = photo_ratio`` while keeping as many images as
possible (a seeded choice of which to drop); it is applied per process.

Folders may carry StyleGAN2-ADA's ``dataset.json`` (``{"labels": [["rel/path.png", 3], ...]}``)
for conditional training (``c_dim > 0``).
"""
from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Iterator

import numpy as np

from stylegan_jax.data_paths import IMAGE_EXTENSIONS, find_tfds_dir

__all__ = ['create_input_iter', 'dataset_size', 'list_image_files', 'photo_ratio_mask']

# What tf.io.decode_image reads; the other IMAGE_EXTENSIONS are re-encoded to PNG with Pillow.
_TF_DECODABLE = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')
_CACHE_BYTES = 1 << 30  # cache decoded images in RAM up to 1 GiB per process
_INT64_MAX = np.iinfo(np.int64).max


# ------------------------------------------------------------------------------------- helpers

def _tf() -> Any:
    """Import TensorFlow without letting it grab accelerator memory (JAX owns the devices)."""
    import tensorflow as tf
    try:
        tf.config.set_visible_devices([], 'GPU')
    except RuntimeError:  # TF already initialised its devices; nothing we can change now
        pass
    return tf


def _process_info() -> tuple[int, int]:
    """(process_index, process_count) of this JAX process (a function so tests can mock it)."""
    import jax
    return jax.process_index(), jax.process_count()


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    """cfg.key for ConfigDicts, dataclasses and dicts alike, with a default."""
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    try:
        value = getattr(cfg, key)
    except (AttributeError, KeyError):
        return default
    return default if value is None and default is not None else value


def _source(data_cfg: Any) -> str:
    source = _get(data_cfg, 'source', 'tfds')
    if source not in ('demo', 'folder', 'tfds'):
        raise ValueError(f"data.source must be 'demo', 'folder' or 'tfds', got {source!r}")
    return source


def _demo_dir(data_cfg: Any, workdir: str | os.PathLike | None) -> pathlib.Path:
    """Generate (once) and return the demo folder (data.demo_set): data.path, or WORKDIR/demo_data."""
    from stylegan_jax.train.demo_data import ensure_demo_dataset
    path = _get(data_cfg, 'path', '') or ''
    if not path:
        if workdir is None:
            raise ValueError('data.source=demo needs data.path or a workdir to generate it in')
        path = pathlib.Path(workdir) / 'demo_data'
    return ensure_demo_dataset(path, num_images=int(_get(data_cfg, 'num_images', 256)),
                               resolution=int(_get(data_cfg, 'resolution', 32)),
                               demo_set=str(_get(data_cfg, 'demo_set', 'portraits')))


def list_image_files(directory: str | os.PathLike) -> list[pathlib.Path]:
    """Image files under ``directory`` (recursive, sorted by relative path, hidden files skipped).

    Raises ValueError naming the folder when it is missing or holds no readable image type.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise ValueError(f'{directory}: image folder not found')
    files = sorted(p for p in directory.rglob('*')
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(part.startswith('.') for part in p.relative_to(directory).parts))
    if not files:
        raise ValueError(f'{directory}: no images ({", ".join(IMAGE_EXTENSIONS)}) in the folder')
    return files


def _folder_labels(directory: pathlib.Path, files: list[pathlib.Path], c_dim: int) -> np.ndarray:
    """Integer labels from StyleGAN2-ADA's dataset.json (only read when c_dim > 0)."""
    meta = directory / 'dataset.json'
    if not meta.is_file():
        raise ValueError(f'{directory}: c_dim={c_dim} needs labels but the folder has no dataset.json')
    try:
        labels = dict(json.loads(meta.read_text())['labels'])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{meta}: cannot read labels ({e})') from None
    out = []
    for f in files:
        rel = f.relative_to(directory).as_posix()
        if rel not in labels:
            raise ValueError(f'{meta}: no label for {rel}')
        lab = labels[rel]
        if not isinstance(lab, int) or not 0 <= lab < c_dim:
            raise ValueError(f'{meta}: label of {rel} must be an integer in [0, {c_dim}), got {lab!r}')
        out.append(lab)
    return np.asarray(out, np.int64)


def _tfds_version_dir(path: str | os.PathLike) -> pathlib.Path:
    """`data_paths.find_tfds_dir` (the policy metrics share), as a one-line error when there is none."""
    if not pathlib.Path(path).is_dir():
        raise ValueError(f'{path}: TFDS dataset directory not found')
    vdir = find_tfds_dir(path)
    if vdir is None:
        raise ValueError(f'{path}: no dataset_info.json found (not a TFDS dataset from data-prep build)')
    return vdir


def _png_bytes(path: bytes) -> bytes:
    """An image file tf.io.decode_image cannot read (WebP, TIFF), decoded by Pillow, as PNG bytes."""
    import io

    from PIL import Image
    name = path.decode()
    try:
        with Image.open(name) as im:
            buf = io.BytesIO()
            im.convert('RGB').save(buf, format='PNG')
    except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f'{name}: cannot read image ({e})') from None
    return buf.getvalue()


def _read_image_file(tf: Any, path: Any) -> Any:
    """Encoded bytes of an image file that `_decode_resize` reads, for every type in IMAGE_EXTENSIONS."""
    ext = tf.strings.lower(tf.strings.regex_replace(path, r'^.*(\.[^./]*)$', r'\1'))
    native = tf.reduce_any(tf.equal(ext, tf.constant(_TF_DECODABLE)))
    return tf.cond(native, lambda: tf.io.read_file(path),
                   lambda: tf.reshape(tf.numpy_function(_png_bytes, [path], tf.string, stateful=False), []))


def photo_ratio_mask(kinds: np.ndarray, photo_ratio: float | None, seed: int,
                     photo: int = 1, painting: int = 0) -> np.ndarray:
    """Boolean keep-mask reaching ``photos / (photos + paintings) == photo_ratio`` (floored).

    Keeps every image of the scarcer kind and a seeded random subset of the other, i.e. as many
    images as possible. Images of any other kind are kept. ``None`` keeps everything.
    """
    kinds = np.asarray(kinds)
    keep = np.ones(len(kinds), bool)
    if photo_ratio is None:
        return keep
    r = float(photo_ratio)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f'data.photo_ratio must be in [0, 1] or None, got {photo_ratio!r}')
    photos, paints = np.flatnonzero(kinds == photo), np.flatnonzero(kinds == painting)
    n_p, n_q = len(photos), len(paints)
    if r == 1.0:
        want_p, want_q = n_p, 0
    elif r == 0.0:
        want_p, want_q = 0, n_q
    elif n_p * (1 - r) > r * n_q:  # too many photos: keep all paintings
        want_p, want_q = min(n_p, int(np.floor(r * n_q / (1 - r) + 1e-9))), n_q
    else:
        want_p, want_q = n_p, min(n_q, int(np.floor(n_p * (1 - r) / r + 1e-9)))
    rng = np.random.default_rng([seed, 0x9E3779B1])
    keep[rng.permutation(photos)[want_p:]] = False
    keep[rng.permutation(paints)[want_q:]] = False
    return keep


# ------------------------------------------------------------------------------ sources

class _Source:
    """A per-process source: a tf.data dataset of {'image': encoded bytes, 'label': int64}."""

    def __init__(self, name: str, dataset: Any, size: int) -> None:
        self.name, self.dataset, self.size = name, dataset, size


def _folder_source(directory: pathlib.Path, c_dim: int, process_index: int, process_count: int,
                   photo_ratio: Any, kinds: dict[str, str] | None = None, seed: int = 0) -> _Source:
    """``kinds`` ({relative path: 'photo' | 'painting'}, e.g. a demo manifest's) enables photo_ratio."""
    tf = _tf()
    if photo_ratio is not None and kinds is None:
        raise ValueError(f'{directory}: data.photo_ratio needs images of known kind (photo/painting): a TFDS '
                         "dataset from data-prep build or data.demo_set='elves', not an image folder")
    files = list_image_files(directory)
    if photo_ratio is not None:
        ids = {'painting': 0, 'photo': 1}
        kind = np.array([ids.get(kinds.get(f.relative_to(directory).as_posix(), ''), -1) for f in files])
        keep = photo_ratio_mask(kind, photo_ratio, seed)
        files = [f for f, k in zip(files, keep) if k]
        if not files:
            raise ValueError(f'{directory}: photo_ratio={photo_ratio} keeps no images '
                             f'({int((kind == 1).sum())} photos, {int((kind != 1).sum())} others)')
    labels = _folder_labels(directory, files, c_dim) if c_dim > 0 else np.zeros(len(files), np.int64)
    per_process = len(files) // process_count  # equal sizes so every process has the same epochs
    if per_process == 0:
        raise ValueError(f'{directory}: {len(files)} images cannot be split over {process_count} processes')
    idx = np.arange(len(files))[process_index::process_count][:per_process]
    paths = [str(files[i]) for i in idx]
    ds = tf.data.Dataset.from_tensor_slices({'path': paths, 'label': labels[idx]})
    ds = ds.map(lambda ex: {'image': _read_image_file(tf, ex['path']), 'label': ex['label']},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _Source(str(directory), ds, per_process)


def _tfds_source(path: str, c_dim: int, process_index: int, process_count: int, photo_ratio: Any,
                 seed: int, split: str) -> _Source:
    tf = _tf()
    import tensorflow_datasets as tfds
    vdir = _tfds_version_dir(path)
    try:
        builder = tfds.builder_from_directory(vdir)
    except Exception as e:  # tfds raises assorted types for damaged metadata
        raise ValueError(f'{vdir}: cannot open the TFDS dataset ({type(e).__name__}: {e})') from None
    features = builder.info.features
    if 'image' not in features:
        raise ValueError(f'{vdir}: dataset has no image feature')
    if split not in builder.info.splits:
        raise ValueError(f'{vdir}: no split {split!r} (has {", ".join(builder.info.splits)})')
    if c_dim > 0:
        if 'label' not in features:
            raise ValueError(f'{vdir}: c_dim={c_dim} but the dataset has no label feature')
        num_classes = features['label'].num_classes
        if num_classes > c_dim:
            raise ValueError(f'{vdir}: {num_classes} label classes do not fit c_dim={c_dim}')
    sub = tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count,
                                     drop_remainder=True)
    read_cfg = tfds.ReadConfig(shuffle_seed=None, interleave_cycle_length=1, try_autocache=False)
    try:
        ds = builder.as_dataset(split=sub, shuffle_files=False, read_config=read_cfg,
                                decoders={'image': tfds.decode.SkipDecoding()})
    except Exception as e:
        raise ValueError(f'{vdir}: cannot read split {sub} ({type(e).__name__}: {e})') from None
    size = int(builder.info.splits[sub].num_examples)
    has_label = 'label' in features

    def pick(ex: dict) -> dict:
        label = tf.cast(ex['label'], tf.int64) if has_label else tf.constant(0, tf.int64)
        return {'image': ex['image'], 'label': label}

    if photo_ratio is not None:
        if 'kind' not in features:
            raise ValueError(f'{vdir}: data.photo_ratio needs a kind feature (painting/photo)')
        names = list(features['kind'].names)
        if 'photo' not in names or 'painting' not in names:
            raise ValueError(f'{vdir}: kind feature has classes {names}, expected painting and photo')
        kinds = np.fromiter((k for k in ds.map(lambda ex: ex['kind']).as_numpy_iterator()), np.int64)
        keep = photo_ratio_mask(kinds, photo_ratio, seed, names.index('photo'), names.index('painting'))
        size = int(keep.sum())
        if size == 0:
            n_photo = int((kinds == names.index('photo')).sum())
            raise ValueError(f'{vdir}: photo_ratio={photo_ratio} keeps no images '
                             f'({n_photo} photos, {len(kinds) - n_photo} others)')
        keep_t = tf.constant(keep)
        ds = ds.enumerate().filter(lambda i, ex: keep_t[i])
        ds = ds.map(lambda _, kept: kept)
    if size == 0:
        raise ValueError(f'{vdir}: no images in split {split!r} for process {process_index} of {process_count}')
    return _Source(str(vdir), ds.map(pick), size)


def _open_source(data_cfg: Any, c_dim: int, seed: int, workdir: Any, process_index: int,
                 process_count: int) -> _Source:
    source = _source(data_cfg)
    photo_ratio = _get(data_cfg, 'photo_ratio', None)
    if source == 'demo':
        if c_dim > 0:
            raise ValueError('the demo dataset has no labels: set model.c_dim=0')
        from stylegan_jax.train.demo_data import read_kinds
        directory = _demo_dir(data_cfg, workdir)
        return _folder_source(directory, 0, process_index, process_count, photo_ratio, read_kinds(directory), seed)
    path = _get(data_cfg, 'path', '') or ''
    if not path:
        raise ValueError(f'data.source={source} needs data.path')
    if source == 'folder':
        return _folder_source(pathlib.Path(path), c_dim, process_index, process_count, photo_ratio)
    return _tfds_source(path, c_dim, process_index, process_count, photo_ratio, seed,
                        _get(data_cfg, 'split', 'train'))


# ------------------------------------------------------------------------------ pipeline

def _decode_resize(tf: Any, encoded: Any, resolution: int) -> Any:
    """Encoded PNG/JPEG/BMP/GIF -> uint8 [R, R, 3]: centre square crop, area/Lanczos resize."""
    img = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    img.set_shape([None, None, 3])
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    side = tf.minimum(h, w)
    img = img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]

    def resize() -> Any:
        x = tf.cast(img, tf.float32)
        x = tf.cond(side > resolution,
                    lambda: tf.image.resize(x, [resolution, resolution], method='area'),
                    lambda: tf.image.resize(x, [resolution, resolution], method='lanczos3',
                                            antialias=True))
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)

    img = tf.cond(side == resolution, lambda: img, resize)
    img.set_shape([resolution, resolution, 3])
    return img


def _mix_seed(*values: int) -> int:
    """A 31-bit seed from integers (stable across runs and platforms)."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(1)[0] >> 1)


def _shard_stream(tf: Any, src: _Source, shard: int, seed: int, start: int, batch: int, resolution: int,
                  xflip: bool, buffer: int, cache: bool, c_dim: int) -> Any:
    """Batches of one shard's stream from position `start` (see the module docstring)."""
    n = src.size
    base = src.dataset
    if cache:  # decode once, keep uint8 images in RAM
        base = base.map(lambda ex: {'image': _decode_resize(tf, ex['image'], resolution),
                                    'label': ex['label']},
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    shuffle_seed = _mix_seed(seed, shard, 1)
    flip_seed = _mix_seed(seed, shard, 2)

    def epoch(e: Any) -> Any:
        # Seed depends on (seed, shard, epoch) only, so any epoch can be rebuilt without the earlier ones.
        s = (tf.constant(shuffle_seed, tf.int64) * 1_000_003 + e) % (2 ** 31 - 1)
        return base.shuffle(min(buffer, n), seed=s, reshuffle_each_iteration=False)

    stream = tf.data.Dataset.range(start // n, _INT64_MAX).flat_map(epoch).skip(start % n)
    stream = tf.data.Dataset.zip((tf.data.Dataset.range(start, _INT64_MAX), stream))

    def finish(pos: Any, ex: dict) -> dict:
        img = ex['image'] if cache else _decode_resize(tf, ex['image'], resolution)
        if xflip:
            u = tf.random.stateless_uniform([], seed=tf.stack([tf.constant(flip_seed, tf.int64), pos]))
            img = tf.cond(u < 0.5, lambda: img[:, ::-1], lambda: img)
        if c_dim > 0:
            label = tf.one_hot(ex['label'], c_dim, dtype=tf.float32)
        else:
            label = tf.zeros([0], tf.float32)
        return {'image': img, 'label': label}

    ds = stream.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch, drop_remainder=True)


def create_input_iter(data_cfg: Any, global_batch_size: int, seed: int, start_step: int = 0,
                      c_dim: int = 0, workdir: str | os.PathLike | None = None, local_shards: int = 1
                      ) -> Iterator[dict[str, np.ndarray]]:
    """Infinite, deterministic, resumable iterator of this process's training batches.

    ``start_step`` is the number of batches already consumed; the stream continues exactly where
    a run of that many steps left it. ``local_shards``: data shards this process reads (training:
    one per local device, see the module docstring); the batch is their batches, concatenated in
    shard order. Raises ValueError naming the path for a missing, empty or unreadable dataset (at
    creation, or at the first batch for files that fail to decode).
    """
    tf = _tf()
    process_index, process_count = _process_info()
    if local_shards < 1:
        raise ValueError(f'local_shards must be >= 1, got {local_shards}')
    num_shards = process_count * local_shards
    if global_batch_size <= 0 or global_batch_size % num_shards:
        raise ValueError(f'batch size {global_batch_size} must be a positive multiple of the '
                         f'{num_shards} data shards (process count {process_count} x {local_shards} per process)')
    if start_step < 0:
        raise ValueError(f'start_step must be >= 0, got {start_step}')
    shard_batch = global_batch_size // num_shards
    resolution = int(_get(data_cfg, 'resolution', 0) or 0)
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f'data.resolution must be a power of two >= 4, got {resolution}')
    xflip = bool(_get(data_cfg, 'xflip', False))
    buffer = max(1, int(_get(data_cfg, 'shuffle_buffer', 10_000) or 1))

    shards = [process_index * local_shards + j for j in range(local_shards)]
    sources = [_open_source(data_cfg, c_dim, seed, workdir, i, num_shards) for i in shards]
    cache = sum(src.size for src in sources) * resolution * resolution * 3 <= _CACHE_BYTES
    streams = [_shard_stream(tf, src, i, seed, start_step * shard_batch, shard_batch, resolution, xflip, buffer,
                             cache, c_dim) for i, src in zip(shards, sources)]
    if len(streams) == 1:
        ds = streams[0]
    else:
        ds = tf.data.Dataset.zip(tuple(streams)).map(
            lambda *parts: {k: tf.concat([p[k] for p in parts], 0) for k in parts[0]})
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.prefetch(2).with_options(options)
    return _iterate(ds, sources[0].name)


def _iterate(ds: Any, name: str) -> Iterator[dict[str, np.ndarray]]:
    """numpy batches; decoding errors become a one-line ValueError naming the dataset."""
    tf = _tf()
    it = iter(ds.as_numpy_iterator())
    while True:
        try:
            batch = next(it)
        except tf.errors.OpError as e:
            text = e.message or str(e)
            ours = re.findall(r'^ValueError: (.+)$', text, re.M)  # _png_bytes' message names the file
            if ours:
                raise ValueError(ours[-1][:300]) from None
            msg = text.strip().splitlines()[0][:300]
            raise ValueError(f'{name}: unreadable image data ({msg})') from None
        yield batch


def dataset_size(data_cfg: Any, workdir: str | os.PathLike | None = None, seed: int = 0,
                 c_dim: int = 0) -> int:
    """Number of training images over all processes (after photo_ratio filtering)."""
    return _open_source(data_cfg, c_dim, seed, workdir, 0, 1).size
