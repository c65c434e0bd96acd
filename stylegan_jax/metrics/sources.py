"""Where metric images come from: an image folder, a TFDS dataset directory, or a checkpoint's G.

Every source yields uint8 RGB NHWC numpy batches in a fixed order (sorted file names, TFDS records
in stored order, generator samples from a seeded PRNG), so features and statistics are reproducible.
`open_source(path)` picks the kind from what the path holds:

- a directory with `network.json` (converted checkpoint or training workdir, `step`/`kimg` pick a
  snapshot) or a checkpoint file (.pkl/.pt, converted in memory) -> `CheckpointSource`, sampled
  with `stylegan_jax.sample.Sampler` at truncation 1 and random noise, as the papers' metrics do;
- a `.zip` file (a StyleGAN2-ADA `dataset_tool.py` dataset: images, optional dataset.json) -> `ZipSource`;
- a directory with `dataset_info.json` in it or up to two levels below (a TFDS data_dir, a dataset
  dir or a version dir as written by `data-prep build`) -> `TFDSSource` (feature `image`);
- any other directory -> `FolderSource` (images found recursively, sorted by relative path).

`recorded_real_set(workdir)` is the real image set a training run recorded in its network.json
(`log.fid_real`, else `data.path`, else the generated demo set), used when `--real` is omitted.
Folder, zip and TFDS sources can centre-crop and resize every image to a `resolution` (box
filter when shrinking, Lanczos when enlarging, as the training input does), so the real set is
compared at the size the generator was trained on.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import os
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from stylegan_jax.data_paths import IMAGE_EXTENSIONS, find_tfds_dir  # shared with training's input
from stylegan_jax.metrics.inception import MetricsError


class ImageSource(Protocol):
    """What the metrics need from a set of images."""

    description: str

    def count(self, num: int | None) -> int:
        """How many images `batches(num=num)` yields."""

    def batches(self, batch_size: int, num: int | None = None) -> Iterator[np.ndarray]:
        """uint8 [b, H, W, 3] batches, at most `num` images in all (None: every image)."""

    def fingerprint(self) -> str:
        """A string that changes when the images change (for statistics caches)."""


def _to_rgb(a: np.ndarray, name: str, resolution: int | None = None) -> np.ndarray:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise MetricsError(f'{name}: not an image with 1, 3 or 4 channels (shape {a.shape})')
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = np.ascontiguousarray(a[..., :3].astype(np.uint8))
    return a if resolution is None else fit_square(a, resolution)


def fit_square(a: np.ndarray, resolution: int) -> np.ndarray:
    """Centre square crop, then resize to resolution (box filter shrinking, Lanczos enlarging)."""
    from PIL import Image

    h, w = a.shape[:2]
    if h == w == resolution:
        return a
    s = min(h, w)
    a = a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    im = Image.fromarray(a).resize((resolution, resolution), Image.BOX if s > resolution else Image.LANCZOS)
    return np.asarray(im, np.uint8)


def _limit(n: int, num: int | None) -> int:
    if num is None:
        return n
    if num < 1:
        raise MetricsError(f'--num must be >= 1, got {num}')
    return min(n, num)


class FolderSource:
    """Images (PNG/JPEG/WebP/BMP/TIFF) anywhere under a folder, sorted by relative path.

    Decoded with Pillow, `.convert('RGB')` like pytorch-fid's ImagePathDataset (alpha dropped, grey
    replicated); decoding runs on a small thread pool while the network computes.
    """

    def __init__(self, path: str | os.PathLike, resolution: int | None = None) -> None:
        self.path = Path(path)
        self.resolution = resolution
        if not self.path.is_dir():
            raise MetricsError(f'{self.path}: no such image folder')
        self.files = sorted((p for p in self.path.rglob('*')
                             if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                            key=lambda p: p.relative_to(self.path).as_posix())
        if not self.files:
            raise MetricsError(f'{self.path}: no images found (looked for {", ".join(IMAGE_EXTENSIONS)})')
        self.description = f'folder {self.path} ({len(self.files)} images{_at(resolution)})'

    def count(self, num: int | None) -> int:
        return _limit(len(self.files), num)

    def fingerprint(self) -> str:
        h = hashlib.sha256(str(self.path.resolve()).encode())
        for p in self.files:
            st = p.stat()
            h.update(f'{p.relative_to(self.path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
        return 'folder:' + h.hexdigest() + _at(self.resolution)

    def _load(self, path: Path) -> np.ndarray:
        return decode_image(path, str(path), self.resolution)

    def batches(self, batch_size: int, num: int | None = None) -> Iterator[np.ndarray]:
        files = self.files[:self.count(num)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            # Decode one batch ahead of the consumer.
            pending = None
            for start in range(0, len(files) + batch_size, batch_size):
                nxt = ([pool.submit(self._load, p) for p in files[start:start + batch_size]]
                       if start < len(files) else None)
                if pending:
                    images = [f.result() for f in pending]
                    yield from _same_size_runs(images)
                pending = nxt


def decode_image(file: Any, name: str, resolution: int | None = None) -> np.ndarray:
    """uint8 RGB of an image file (path or file object) the pytorch-fid way (`.convert('RGB')`), optionally resized."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as im:
            return _to_rgb(np.asarray(im.convert('RGB')), name, resolution)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise MetricsError(f'{name}: cannot read image ({e})') from None


def _same_size_runs(images: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Stack images into batches, splitting where the size changes (each is resized separately)."""
    start = 0
    for i in range(1, len(images) + 1):
        if i == len(images) or images[i].shape != images[start].shape:
            yield np.stack(images[start:i])
            start = i


class TFDSSource:
    """A TFDS dataset directory (all splits, stored order), feature `image`."""

    def __init__(self, path: str | os.PathLike, image_key: str = 'image', resolution: int | None = None) -> None:
        self.path = Path(path)
        self.resolution = resolution
        builder_dir = find_tfds_dir(self.path)
        if builder_dir is None:
            raise MetricsError(f'{self.path}: no dataset_info.json found (not a TFDS dataset directory)')
        self.builder_dir = builder_dir
        self.image_key = image_key
        try:
            import tensorflow_datasets as tfds

            self.builder = tfds.builder_from_directory(str(builder_dir))
        except Exception as e:  # tfds raises many kinds for bad metadata
            raise MetricsError(f'{builder_dir}: cannot open TFDS dataset ({type(e).__name__}: '
                               f'{str(e).splitlines()[0][:200] if str(e) else ""})') from None
        if image_key not in self.builder.info.features:
            raise MetricsError(f'{builder_dir}: TFDS dataset has no {image_key!r} feature '
                               f'(has {", ".join(self.builder.info.features.keys())})')
        self.splits = sorted(self.builder.info.splits.keys())
        if not self.splits:
            raise MetricsError(f'{builder_dir}: TFDS dataset has no splits')
        self.num_examples = sum(self.builder.info.splits[s].num_examples for s in self.splits)
        self.description = f'TFDS {builder_dir} ({self.num_examples} images{_at(resolution)})'

    def count(self, num: int | None) -> int:
        return _limit(self.num_examples, num)

    def fingerprint(self) -> str:
        h = hashlib.sha256(str(self.builder_dir.resolve()).encode())
        h.update((self.builder_dir / 'dataset_info.json').read_bytes())
        return 'tfds:' + h.hexdigest() + _at(self.resolution)

    def batches(self, batch_size: int, num: int | None = None) -> Iterator[np.ndarray]:
        ds = self.builder.as_dataset(split='+'.join(self.splits), shuffle_files=False)
        ds = ds.map(lambda ex: ex[self.image_key]).take(self.count(num))
        buf: list[np.ndarray] = []
        for img in ds.as_numpy_iterator():
            buf.append(_to_rgb(img, str(self.builder_dir), self.resolution))
            if len(buf) == batch_size:
                yield from _same_size_runs(buf)
                buf = []
        if buf:
            yield from _same_size_runs(buf)


class CheckpointSource:
    """Samples of a checkpoint's G_ema: z ~ N(0, I) from `numpy.random.RandomState(seed)`, truncation 1.

    Conditional generators get uniformly random classes. Noise is random (the generator's default at
    evaluation in the StyleGAN metrics), seeded from `seed`.
    """

    def __init__(self, path: str | os.PathLike, seed: int = 0, truncation: float = 1.0,
                 default_num: int = 50000, step: int | None = None, kimg: float | None = None) -> None:
        from stylegan_jax.checkpoint import CheckpointError
        from stylegan_jax.sample import Sampler

        self.path = Path(path)
        try:
            self.sampler = Sampler.from_checkpoint(self.path, step=step, kimg=kimg)
        except (CheckpointError, ValueError, OSError) as e:
            raise MetricsError(f'{self.path}: cannot load checkpoint ({e})') from None
        self.seed, self.truncation, self.default_num = seed, truncation, default_num
        snap = self.sampler.info.get('step')
        self.snapshot = '' if snap is None else f', step {snap}'
        self.description = (f'checkpoint {self.path} ({self.sampler.resolution}px{self.snapshot}, truncation '
                            f'{truncation}, seed {seed})')

    def count(self, num: int | None) -> int:
        return self.default_num if num is None else _limit(num, num)

    def fingerprint(self) -> str:
        return f'checkpoint:{self.path.resolve()}{self.snapshot}:{self.seed}:{self.truncation}'

    def batches(self, batch_size: int, num: int | None = None) -> Iterator[np.ndarray]:
        n = self.count(num)
        rs = np.random.RandomState(self.seed)
        s = self.sampler
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = rs.randn(m, s.z_dim).astype(np.float32)
            if s.c_dim:
                classes = rs.randint(0, s.c_dim, m)
                # Sampler takes one class per call: generate each class present in this batch.
                out = np.empty((m, s.resolution, s.resolution, 3), np.uint8)
                for c in np.unique(classes):
                    idx = np.nonzero(classes == c)[0]
                    out[idx] = _rgb(s.images_from_z(z[idx], self.truncation, noise_mode='random',
                                                    seed=self.seed + start, class_idx=int(c), batch=batch_size))
                yield out
            else:
                yield _rgb(s.images_from_z(z, self.truncation, noise_mode='random', seed=self.seed + start,
                                           batch=batch_size))


def _rgb(images: np.ndarray) -> np.ndarray:
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _at(resolution: int | None) -> str:
    return '' if resolution is None else f', at {resolution}x{resolution}'


class ZipSource:
    """A StyleGAN2-ADA dataset zip (`dataset_tool.py` output): the images in it, sorted by name."""

    def __init__(self, path: str | os.PathLike, resolution: int | None = None) -> None:
        import zipfile

        self.path = Path(path)
        self.resolution = resolution
        try:
            with zipfile.ZipFile(self.path) as zf:
                self.names = sorted(n for n in zf.namelist() if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
        except (zipfile.BadZipFile, OSError) as e:
            raise MetricsError(f'{self.path}: not a readable zip file ({e})') from None
        if not self.names:
            raise MetricsError(f'{self.path}: no images in the zip (looked for {", ".join(IMAGE_EXTENSIONS)})')
        self.description = f'zip {self.path} ({len(self.names)} images{_at(resolution)})'

    def count(self, num: int | None) -> int:
        return _limit(len(self.names), num)

    def fingerprint(self) -> str:
        st = self.path.stat()
        return f'zip:{self.path.resolve()}:{st.st_size}:{st.st_mtime_ns}' + _at(self.resolution)

    def batches(self, batch_size: int, num: int | None = None) -> Iterator[np.ndarray]:
        import io
        import zipfile

        names = self.names[:self.count(num)]
        with zipfile.ZipFile(self.path) as zf:
            for start in range(0, len(names), batch_size):
                yield from _same_size_runs([decode_image(io.BytesIO(zf.read(n)), f'{self.path}:{n}', self.resolution)
                                            for n in names[start:start + batch_size]])


CHECKPOINT_SUFFIXES = ('.pkl', '.pt', '.pth')


def open_source(path: str | os.PathLike, seed: int = 0, truncation: float = 1.0, resolution: int | None = None,
                step: int | None = None, kimg: float | None = None) -> ImageSource:
    """The right source for a path (see the module docstring); MetricsError if it is none of them.

    `resolution` resizes images of folders, zips and TFDS sets; `step`/`kimg` pick a workdir snapshot.
    """
    p = Path(path)
    if not p.exists():
        raise MetricsError(f'{p}: no such file or directory')
    if p.is_file():
        if p.suffix.lower() == '.zip':
            return ZipSource(p, resolution)
        if p.suffix.lower() in CHECKPOINT_SUFFIXES:
            return CheckpointSource(p, seed=seed, truncation=truncation)
        raise MetricsError(f'{p}: expected an image folder, a dataset .zip, a TFDS dataset directory or a '
                           f'checkpoint (or a statistics .npz for --real)')
    if (p / 'network.json').is_file():
        return CheckpointSource(p, seed=seed, truncation=truncation, step=step, kimg=kimg)
    if find_tfds_dir(p) is not None:
        return TFDSSource(p, resolution=resolution)
    return FolderSource(p, resolution)


def recorded_real_set(workdir: str | os.PathLike) -> Path | None:
    """The real images a training workdir was trained on, from its network.json (None if it records none)."""
    import json

    workdir = Path(workdir)
    try:
        training = json.loads((workdir / 'network.json').read_text()).get('training') or {}
    except (OSError, ValueError):
        return None
    log, data = training.get('log') or {}, training.get('data') or {}
    for candidate in (log.get('fid_real'), data.get('path')):
        if candidate:
            return Path(candidate)
    if data.get('source') == 'demo' and (workdir / 'demo_data').is_dir():
        return workdir / 'demo_data'
    return None


__all__ = ['CheckpointSource', 'FolderSource', 'IMAGE_EXTENSIONS', 'ImageSource', 'TFDSSource', 'ZipSource',
           'find_tfds_dir', 'fit_square', 'open_source', 'recorded_real_set']
