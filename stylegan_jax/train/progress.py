"""Training made visible: ``samples/progress.png`` and the SWD at every sample grid.

    progress = Progress.for_run(config, workdir, start_kimg)     # once per run (process 0)
    metrics = progress.update(kimg, images)                      # at every grid: uint8 G_ema samples

``progress.png`` is one picture of the whole run: a column of real training images, then one
column per grid (kimg 0 = the starting network, e.g. the pretrained source model of a transfer,
..., the final network), the same seeds in every row, each column labelled with its kimg and SWD.
So a transfer shows as the same faces turning into the target domain from left to right. With
many grids, the columns shown are kimg 0, the last one and evenly spaced ones in between.

The metric is the sliced Wasserstein distance on Laplacian-pyramid patches
(`stylegan_jax.metrics.swd`, x 1e3, lower is closer) between the grid images and a fixed set of
real training images (the training data after ``data.photo_ratio``, up to ``MAX_REAL`` images).
It needs no downloaded weights; its value depends on the number of images compared, so compare
numbers from the same run or runs with the same ``log.grid_seeds``.

A resumed run keeps its earlier columns: they are stored next to the picture in
``samples/progress.npz`` and entries after the resume point are dropped.
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Callable

import numpy as np

from stylegan_jax.metrics.swd import MIN_RESOLUTION, SWD

__all__ = ['Progress', 'load_reals', 'MAX_REAL']

MAX_REAL = 512             # real images compared (all of a small set)
_MAX_REAL_VALUES = 1 << 26  # ... but at most 64M pixel values (256 MB as float32) at high resolution
PICTURE = 'progress.png'
STATE = 'progress.npz'


def load_reals(config: Any, workdir: str | os.PathLike, max_images: int = MAX_REAL) -> np.ndarray:
    """Up to ``max_images`` real training images (uint8 NHWC) as the training input yields them."""
    import jax

    from stylegan_jax.train import input_pipeline
    res = int(config.data.resolution)
    c_dim = int(config.model.get('c_dim', 0) or 0)
    procs = jax.process_count()
    size = input_pipeline.dataset_size(config.data, workdir, int(config.seed), c_dim) // procs
    n = max(1, min(size, max_images, max(16, _MAX_REAL_VALUES // (res * res * 3))))
    it = input_pipeline.create_input_iter(config.data, n * procs, int(config.seed), c_dim=c_dim,
                                          workdir=str(workdir))
    return np.asarray(next(it)['image'])


def _font(size: int) -> Any:
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


class Progress:
    """The progress picture and SWD of one run (see the module docstring).

    Args:
      reals: uint8 [N, H, W, C] real images: the SWD reference and the picture's first column.
      samples_dir: where progress.png / progress.npz go (WORKDIR/samples).
      rows: images per column (the first ``rows`` grid images; the SWD uses all of them).
      max_columns: grid columns shown at most (kimg 0, the last, evenly spaced in between).
      total_kimg: the run's length; the update that reaches it prints the SWD from start to end.
      start_kimg: resume point; stored columns after it are dropped.
      log: where the one-line reports go (default: tqdm.write, which keeps progress bars intact).
    """

    def __init__(self, reals: np.ndarray, samples_dir: str | os.PathLike, rows: int = 6, max_columns: int = 9,
                 total_kimg: float | None = None, start_kimg: float = 0.0,
                 log: Callable[[str], None] | None = None) -> None:
        reals = np.asarray(reals)
        if reals.ndim != 4 or reals.dtype != np.uint8 or len(reals) == 0:
            raise ValueError(f'progress: reals must be a non-empty uint8 [N, H, W, C] array, got '
                             f'{reals.dtype} {reals.shape}')
        self.reals, self.rows, self.max_columns, self.total_kimg = reals, rows, max_columns, total_kimg
        self.dir = pathlib.Path(samples_dir)
        # SWD's coarsest pyramid level is 16x16; smaller runs (tests, toy configs) get the picture only.
        self.swd = SWD(reals) if reals.shape[1] >= MIN_RESOLUTION else None
        self._log = log
        self.kimgs: list[float] = []
        self.columns: list[np.ndarray] = []
        self.metrics: list[dict[str, float]] = []
        self._restore(start_kimg)

    @classmethod
    def for_run(cls, config: Any, workdir: str | os.PathLike, start_kimg: float = 0.0) -> 'Progress':
        """The Progress of a training run: reals from its data, files in WORKDIR/samples."""
        return cls(load_reals(config, workdir), pathlib.Path(workdir) / 'samples',
                   total_kimg=float(config.train.total_kimg), start_kimg=start_kimg)

    # ----------------------------------------------------------------------------- state

    def _restore(self, start_kimg: float) -> None:
        path = self.dir / STATE
        if not path.is_file():
            return
        try:
            with np.load(path) as z:
                kimgs, images, metrics = list(z['kimg']), z['images'], json.loads(str(z['metrics']))
        except (OSError, ValueError, KeyError):
            return  # a damaged file only loses the earlier columns of the picture
        if images.shape[2:] != self.reals.shape[1:]:
            return
        for k, img, m in zip(kimgs, images, metrics):
            if k <= start_kimg + 1e-9:
                self.kimgs.append(float(k))
                self.columns.append(img)
                self.metrics.append(m)

    def _save_state(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (STATE + '.tmp.npz')
        np.savez(tmp, kimg=np.asarray(self.kimgs, np.float64), images=np.stack(self.columns),
                 metrics=json.dumps(self.metrics))
        os.replace(tmp, self.dir / STATE)

    # ----------------------------------------------------------------------------- update

    def _say(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)
        else:
            from tqdm import tqdm
            tqdm.write(msg)

    def update(self, kimg: float, images: np.ndarray) -> dict[str, float]:
        """Score ``images`` (uint8 [N, H, W, C] G_ema samples at ``kimg``), add their column to the
        picture, and return the metrics ({'swd': ..., 'swd_<res>': ...})."""
        images = np.asarray(images)
        metrics = self.swd(images) if self.swd is not None else {}
        # A repeated kimg (e.g. the final grid of a run that ended on a grid step) replaces its column.
        while self.kimgs and self.kimgs[-1] >= kimg - 1e-9:
            self.kimgs.pop(), self.columns.pop(), self.metrics.pop()
        self.kimgs.append(float(kimg))
        self.columns.append(images[:self.rows])
        self.metrics.append(metrics)
        self._save_state()
        self.save_picture(self.dir / PICTURE)
        if self.swd is None:
            self._say(f'kimg {kimg:.1f}: grid added to {PICTURE} (no SWD: images below '
                      f'{MIN_RESOLUTION}x{MIN_RESOLUTION})')
            return metrics
        levels = ', '.join(f'{k[4:]}px {v:.1f}' for k, v in metrics.items() if k != 'swd')
        self._say(f'kimg {kimg:.1f}: SWD {metrics["swd"]:.1f} (x1e3, lower is closer to the reals; {levels})')
        if self.total_kimg is not None and kimg >= self.total_kimg - 1e-6 and len(self.kimgs) > 1:
            self._say(self.summary())
        return metrics

    def summary(self) -> str:
        """'SWD from kimg A to B: x -> y' over the recorded grids."""
        if not any(self.metrics):
            return 'SWD: no grids scored'
        first, last = self.metrics[0]['swd'], self.metrics[-1]['swd']
        trend = 'fell' if last < first else 'did not fall'
        steps = ' '.join(f"{m['swd']:.0f}" for m in self.metrics)
        return (f'SWD (x1e3) from kimg {self.kimgs[0]:.1f} to {self.kimgs[-1]:.1f}: {first:.1f} -> {last:.1f} '
                f'({trend}; at each grid: {steps})')

    # ----------------------------------------------------------------------------- picture

    def _shown(self) -> list[int]:
        n = len(self.kimgs)
        if n <= self.max_columns:
            return list(range(n))
        return sorted(set(np.round(np.linspace(0, n - 1, self.max_columns)).astype(int).tolist()))

    def picture(self) -> np.ndarray:
        """uint8 [H, W, 3]: reals | grid columns, labelled with kimg and SWD."""
        from PIL import Image, ImageDraw
        res = self.reals.shape[1]
        scale = max(1, 96 // res)
        cell, gap, sep, head = res * scale, 2, 10, 34
        rows = min(self.rows, len(self.reals), *(len(c) for c in self.columns)) if self.columns else \
            min(self.rows, len(self.reals))
        cols = [('reals', '', self.reals[:rows])] + [
            (f'kimg {self.kimgs[i]:.1f}', f'SWD {self.metrics[i]["swd"]:.0f}' if self.metrics[i] else '',
             self.columns[i][:rows])
            for i in self._shown()]
        width = len(cols) * (cell + gap) - gap + sep
        height = head + rows * (cell + gap) - gap
        canvas = Image.new('RGB', (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        font = _font(13)
        x = 0
        for j, (title, sub, imgs) in enumerate(cols):
            draw.text((x + 2, 1), title, fill=(0, 0, 0), font=font)
            draw.text((x + 2, 17), sub, fill=(90, 90, 90), font=font)
            for r, img in enumerate(imgs):
                tile = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
                canvas.paste(tile.resize((cell, cell), Image.NEAREST), (x, head + r * (cell + gap)))
            x += cell + gap + (sep if j == 0 else 0)
        return np.asarray(canvas)

    def save_picture(self, path: str | os.PathLike) -> pathlib.Path:
        """Write the picture atomically (`sample.save_png`)."""
        from stylegan_jax.sample import save_png
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, self.picture())
        return path
