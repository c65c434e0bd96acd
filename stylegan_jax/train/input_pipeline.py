"""Training input: TFDS shards from data_prep, an image folder, or the built-in demo portraits.

``create_input_iter`` returns an infinite iterator of per-process batches
``{'image': uint8 [B, R, R, 3] NHWC, 'label': float32 [B, c_dim] one-hot}``.

Determinism and resume. The per-process example stream is a concatenation of epochs. Epoch ``e``
of a shard is its examples in the order a shuffle buffer of ``min(shuffle_buffer, n)`` examples
gives, seeded from ``(seed, shard, e)`` only (a buffer >= n gives a uniform random permutation,
a buffer of 1 the stored order; numpy shuffles folders, tf.data shuffles TFDS records), and the
x-flip of the example at stream position ``i`` is a stateless hash of ``(seed, shard, i)``.
So the stream is a pure function of ``(seed, dataset, shard)``, and ``start_step = k`` starts
it at position ``k * shard_batch``: epoch ``pos // n`` at offset ``pos % n``, without replaying
the earlier epochs. A resumed run therefore sees exactly the batches an uninterrupted run would.

Shards: the data is split into ``process_count * local_shards`` equal shards (TFDS with
``tfds.split_for_jax_process``, folders ``files[i::count]``, remainders dropped), each with its own
stream as above; process ``p`` reads shards ``p * local_shards .. (p + 1) * local_shards - 1`` and
concatenates their batches. Training passes ``local_shards`` = its local device count, so there is one
shard per device and 2 processes x 2 devices read exactly what 1 process x 4 devices reads. Each
process yields ``global_batch_size // process_count`` images per batch.

Images are decoded by Pillow for every source (tf.data only reads and shuffles the TFDS records;
folders and the demo do not import TensorFlow, which saves ~0.5 GiB of host memory), centre-cropped
to a square and resized to ``data.resolution`` when needed (area filter when shrinking, Lanczos-3
when enlarging), in a thread pool, ``_PREFETCH`` batches ahead of training. Decoded images are
cached in memory when the whole local dataset fits in ``_CACHE_BYTES``; otherwise they are decoded
again every epoch.

TFDS datasets (from ``data-prep build``) have features image (JPEG), label (ClassLabel), kind
(ClassLabel ['painting', 'photo']) and source (Text). ``data.photo_ratio`` (TFDS sets, and the demo
folders whose manifest records kinds) keeps the kinds at ``photos / (photos + paintings) = photo_ratio`` while keeping as many images as
possible (a seeded choice of which to drop); it is applied per process.

Folders may carry StyleGAN2-ADA's ``dataset.json`` (``{"labels": [["rel/path.png", 3], ...]}``)
for conditional training (``c_dim > 0``).
"""
from __future__ import annotations

import io
import json
import os
import pathlib
from typing import Any, Iterator

import numpy as np

from stylegan_jax.data_paths import IMAGE_EXTENSIONS, find_tfds_dir

__all__ = ['create_input_iter', 'dataset_size', 'list_image_files', 'photo_ratio_mask']

_CACHE_BYTES = 1 << 30  # cache decoded images in RAM up to 1 GiB per process
_INT64_MAX = np.iinfo(np.int64).max
_PREFETCH = 2  # batches decoded ahead of the training step


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
    """One shard of the data, per process.

    Folders (and the demo) are random access: ``files`` and ``labels`` are the shard's examples.
    TFDS datasets are sequential: ``records`` is a tf.data dataset of ``{'image': encoded bytes,
    'label': int64}`` in storage order.
    """

    def __init__(self, name: str, size: int, files: list[str] | None = None, labels: np.ndarray | None = None,
                 records: Any = None) -> None:
        self.name, self.size, self.files, self.labels, self.records = name, size, files, labels, records


def _folder_source(directory: pathlib.Path, c_dim: int, process_index: int, process_count: int,
                   photo_ratio: Any, kinds: dict[str, str] | None = None, seed: int = 0) -> _Source:
    """``kinds`` ({relative path: 'photo' | 'painting'}, e.g. a demo manifest's) enables photo_ratio."""
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
    return _Source(str(directory), per_process, files=[str(files[i]) for i in idx], labels=labels[idx])


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
    return _Source(str(vdir), size, records=ds.map(pick))


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


# ------------------------------------------------------------------------------ examples

def _decode_resize(data: bytes | str, name: str, resolution: int) -> np.ndarray:
    """An image file (path) or its encoded bytes -> uint8 [R, R, 3]: centre square crop, then area
    (shrinking) or Lanczos-3 (enlarging) resize. Raises ValueError naming ``name`` when unreadable."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            if im.mode.startswith('I'):  # 16/32-bit greyscale: keep the top 8 bits, as decoders do
                arr = np.asarray(im, np.float64)
                im = Image.fromarray(np.clip(arr / (257.0 if arr.max() > 255 else 1.0), 0, 255).astype(np.uint8))
            im = im.convert('RGB')  # drops alpha; the first frame of an animation
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise ValueError(f'{name}: cannot read image ({e})') from None
    w, h = im.size
    side = min(w, h)
    if w != h:
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
    if side == resolution:
        return np.asarray(im, np.uint8)
    # Per channel in float32 ('F' images): Pillow's uint8 resize rounds between its two passes.
    method = Image.Resampling.BOX if side > resolution else Image.Resampling.LANCZOS
    chans = [np.asarray(c.convert('F').resize((resolution, resolution), method)) for c in im.split()]
    return np.clip(np.rint(np.stack(chans, -1)), 0, 255).astype(np.uint8)


def _mix_seed(*values: int) -> int:
    """A 31-bit seed from integers (stable across runs and platforms)."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(1)[0] >> 1)


def _flips(flip_seed: int, positions: np.ndarray) -> np.ndarray:
    """The x-flip coin of each stream position: a stateless hash (splitmix64) of (flip_seed, position)."""
    x = positions.astype(np.uint64) ^ np.uint64((flip_seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)  # uint64 arrays wrap, as the hash needs
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(63)).astype(bool)


def _epoch_order(n: int, buffer: int, seed: int) -> np.ndarray:
    """One epoch of a random-access shard: the order a shuffle buffer of ``buffer`` examples gives
    (fill the buffer, emit a random slot, refill it with the next example); ``buffer >= n`` is a
    uniform random permutation, ``buffer == 1`` the stored order."""
    rng = np.random.default_rng(seed)
    if buffer >= n:
        return rng.permutation(n)
    u = rng.random(n)
    slots = list(range(buffer))
    out = np.empty(n, np.int64)
    nxt = buffer
    for k in range(n):
        j = int(u[k] * len(slots))
        out[k] = slots[j]
        if nxt < n:
            slots[j] = nxt
            nxt += 1
        else:
            slots[j] = slots[-1]
            slots.pop()
    return out


class _Images:
    """Decoded uint8 images of one shard by example id, kept in RAM when ``cache`` (decode once)."""

    def __init__(self, size: int, resolution: int, cache: bool) -> None:
        self.resolution = resolution
        # np.zeros maps untouched pages lazily: memory grows as images are decoded.
        self.store = np.zeros((size, resolution, resolution, 3), np.uint8) if cache else None
        self.have = np.zeros(size, bool) if cache else None

    def get(self, i: int, data: bytes | str, name: str) -> np.ndarray:
        if self.store is not None and self.have[i]:
            return self.store[i]
        img = _decode_resize(data, name, self.resolution)
        if self.store is not None:
            self.store[i], self.have[i] = img, True
        return img


def _folder_positions(src: _Source, shard: int, seed: int, start: int, batch: int, buffer: int
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, list, np.ndarray]]:
    """(positions, example ids, file paths, labels) of each batch of a folder shard's stream."""
    n = src.size
    epoch, offset = divmod(start, n)
    # Each epoch's order depends on (seed, shard, epoch) only, so a resumed run rebuilds it directly.
    order = _epoch_order(n, min(buffer, n), _mix_seed(seed, shard, 1, epoch))
    pos = start
    while True:
        ids = []
        while len(ids) < batch:
            take = order[offset:offset + batch - len(ids)]
            ids.extend(take.tolist())
            offset += len(take)
            if offset == n:
                epoch, offset = epoch + 1, 0
                order = _epoch_order(n, min(buffer, n), _mix_seed(seed, shard, 1, epoch))
        ids_a = np.asarray(ids, np.int64)
        yield np.arange(pos, pos + batch), ids_a, [src.files[i] for i in ids], src.labels[ids_a]
        pos += batch


def _tfds_positions(src: _Source, shard: int, seed: int, start: int, batch: int, buffer: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, list, np.ndarray]]:
    """The same for a TFDS shard: tf.data reads and shuffles the records (see the module docstring)."""
    tf = _tf()
    n = src.size
    base = src.records.enumerate().map(lambda i, ex: {'id': i, **ex})  # id: the decoded-image cache key
    shuffle_seed = _mix_seed(seed, shard, 1)

    def epoch(e: Any) -> Any:
        s = (tf.constant(shuffle_seed, tf.int64) * 1_000_003 + e) % (2 ** 31 - 1)
        return base.shuffle(min(buffer, n), seed=s, reshuffle_each_iteration=False)

    stream = tf.data.Dataset.range(start // n, _INT64_MAX).flat_map(epoch).skip(start % n)
    stream = tf.data.Dataset.zip((tf.data.Dataset.range(start, _INT64_MAX), stream))
    stream = stream.map(lambda pos, ex: {'pos': pos, **ex}).batch(batch, drop_remainder=True).prefetch(2)
    options = tf.data.Options()
    options.deterministic = True
    it = iter(stream.with_options(options).as_numpy_iterator())
    while True:
        try:
            b = next(it)
        except tf.errors.OpError as e:
            msg = (e.message or str(e)).strip().splitlines()[0][:300]
            raise ValueError(f'{src.name}: unreadable record ({msg})') from None
        yield b['pos'], b['id'], list(b['image']), b['label']


def _shard_batches(src: _Source, shard: int, seed: int, start: int, batch: int, resolution: int, xflip: bool,
                   buffer: int, cache: bool, c_dim: int, pool: Any) -> Iterator[dict[str, np.ndarray]]:
    """Batches of one shard's stream from position ``start`` (see the module docstring)."""
    if src.files is not None:
        batches = _folder_positions(src, shard, seed, start, batch, buffer)
    else:
        batches = _tfds_positions(src, shard, seed, start, batch, buffer)
    images = _Images(src.size, resolution, cache)
    flip_seed = _mix_seed(seed, shard, 2)
    for pos, ids, data, labels in batches:
        names = data if src.files is not None else [f'{src.name}: record {i}' for i in ids]
        imgs = np.stack(list(pool.map(images.get, ids.tolist(), data, names)))
        if xflip:
            flip = _flips(flip_seed, pos)
            imgs[flip] = imgs[flip, :, ::-1]
        onehot = np.eye(c_dim, dtype=np.float32)[labels] if c_dim > 0 else np.zeros((batch, 0), np.float32)
        yield {'image': imgs, 'label': onehot}


def create_input_iter(data_cfg: Any, global_batch_size: int, seed: int, start_step: int = 0,
                      c_dim: int = 0, workdir: str | os.PathLike | None = None, local_shards: int = 1
                      ) -> Iterator[dict[str, np.ndarray]]:
    """Infinite, deterministic, resumable iterator of this process's training batches.

    ``start_step`` is the number of batches already consumed; the stream continues exactly where
    a run of that many steps left it. ``local_shards``: data shards this process reads (training:
    one per local device, see the module docstring); the batch is their batches, concatenated in
    shard order. Raises ValueError naming the path for a missing, empty or unreadable dataset (at
    creation), or naming the file for an image that fails to decode (at the batch that holds it).
    """
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

    def batches(pool: Any) -> Iterator[dict[str, np.ndarray]]:
        streams = [_shard_batches(src, i, seed, start_step * shard_batch, shard_batch, resolution, xflip, buffer,
                                  cache, c_dim, pool) for i, src in zip(shards, sources)]
        for parts in zip(*streams):
            yield parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    return _prefetch(batches, _PREFETCH)


def _prefetch(make: Any, depth: int) -> Iterator[dict[str, np.ndarray]]:
    """Run ``make(pool)``'s iterator in a background thread, ``depth`` batches ahead; images decode in a
    thread pool (Pillow releases the GIL). Errors reach the consumer at the batch they belong to, and
    closing (or dropping) the iterator stops the thread."""
    import concurrent.futures
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1), 'decode') as pool:
            try:
                for b in make(pool):
                    if not put((b, None)):
                        return
            except BaseException as e:  # handed to the consumer, which raises it
                put((None, e))

    thread = threading.Thread(target=produce, name='input_pipeline', daemon=True)
    thread.start()
    try:
        while True:
            b, err = q.get()
            if err is not None:
                raise err
            yield b
    finally:
        stop.set()


def dataset_size(data_cfg: Any, workdir: str | os.PathLike | None = None, seed: int = 0,
                 c_dim: int = 0) -> int:
    """Number of training images over all processes (after photo_ratio filtering)."""
    return _open_source(data_cfg, c_dim, seed, workdir, 0, 1).size
