"""Latent-walk videos (like StyleGAN3's gen_video.py) and the MP4 / GIF writer the tools share.

A video is a grid of cells; each cell walks through its keyframe latents. With seeds, the seeds
are dealt to the cells (`len(seeds)` must be a multiple of the number of cells; cell i gets seeds
i*K .. i*K+K-1 for K keyframes, after an optional shuffle), mapped to w with truncation, and
interpolated per layer with scipy's `interp1d` (`kind` 'cubic' or 'linear'), `w_frames` frames
per keyframe. With `loop` (the default, as gen_video.py always does) the keyframes repeat around
the interpolation range so the last frame flows into the first: K * w_frames frames; without it
the walk stops at the last keyframe: (K - 1) * w_frames + 1 frames. Cubic needs 4 points, so a
non-looping walk through fewer keyframes falls back to linear.

Frames are rendered in jitted batches of latents (`Sampler.iter_images_from_ws`), cells side by
side; no Python loop runs G frame by frame. `write_video` writes MP4 (H.264 through the ffmpeg
binary that the imageio-ffmpeg wheel ships) or GIF (Pillow) by file name, and falls back to a GIF
next to the requested file when no ffmpeg can be found.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from stylegan_jax.cli_errors import CLIError

KINDS = ('cubic', 'linear')
WRAPS = 2  # keyframe copies on each side when looping (gen_video.py's default)


class VideoError(CLIError, ValueError):
    """Bad video settings (grid, seeds, frames) or an unwritable output."""


def parse_grid(text: str) -> tuple[int, int]:
    """'4x2' -> (4, 2) = (columns, rows)."""
    m = re.fullmatch(r'\s*(\d+)\s*[xX]\s*(\d+)\s*', text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise VideoError(f'bad grid {text!r} (expected COLSxROWS, e.g. 4x2)')
    return int(m.group(1)), int(m.group(2))


def seed_keyframes(sampler: Any, seeds: Sequence[int], grid: tuple[int, int], trunc: float = 1.0,
                   trunc_cutoff: int | None = None, class_idx: int | None = None,
                   shuffle_seed: int | None = None) -> np.ndarray:
    """[cells, K, num_ws, w_dim] keyframe latents: the seeds dealt to the grid cells, in row-major order."""
    from stylegan_jax.sample import z_from_seeds

    cells = grid[0] * grid[1]
    if len(seeds) % cells:
        raise VideoError(f'{len(seeds)} seeds cannot be dealt to a {grid[0]}x{grid[1]} grid: give a multiple of {cells}')
    seeds = np.asarray(seeds, np.int64)
    if shuffle_seed is not None:
        seeds = seeds.copy()
        np.random.RandomState(shuffle_seed).shuffle(seeds)
    ws = sampler.ws_from_z(z_from_seeds(seeds.tolist(), sampler.z_dim), trunc, trunc_cutoff, class_idx=class_idx)
    return ws.reshape(cells, len(seeds) // cells, *ws.shape[1:])


def num_frames(num_keyframes: int, w_frames: int, loop: bool) -> int:
    return num_keyframes * w_frames if loop else (num_keyframes - 1) * w_frames + 1


def interpolate(keys: np.ndarray, w_frames: int, kind: str = 'cubic', loop: bool = True,
                frames: np.ndarray | None = None) -> np.ndarray:
    """Latents of the walk: keys [cells, K, ...] -> [F, cells, ...] (or only the frame indices `frames`)."""
    import scipy.interpolate

    if kind not in KINDS:
        raise VideoError(f'--kind must be one of {", ".join(KINDS)}, got {kind!r}')
    if w_frames < 1:
        raise VideoError(f'--w-frames must be >= 1, got {w_frames}')
    k = keys.shape[1]
    total = num_frames(k, w_frames, loop)
    idx = np.arange(total) if frames is None else np.asarray(frames)
    if k == 1:
        return np.repeat(keys[:, :1], len(idx), axis=1).swapaxes(0, 1)
    if loop:
        x = np.arange(-k * WRAPS, k * (WRAPS + 1))
        y = np.concatenate([keys] * (2 * WRAPS + 1), axis=1)
    else:
        x, y = np.arange(k), keys
        kind = kind if k >= 4 else 'linear'
    f = scipy.interpolate.interp1d(x, y, kind=kind, axis=1)
    return f(idx / w_frames).astype(np.float32).swapaxes(0, 1)


def render_frames(sampler: Any, walk: np.ndarray, grid: tuple[int, int], noise_mode: str = 'const',
                  batch: int | None = None, chunk_frames: int = 64) -> Iterator[np.ndarray]:
    """uint8 video frames [rows*H, cols*W, C] for walk [F, cells, num_ws, w_dim], in order.

    The latents of `chunk_frames` frames at a time go through the jitted generator in batches.
    """
    from stylegan_jax.sample import image_grid

    cols, _ = grid
    cells = walk.shape[1]
    for start in range(0, len(walk), chunk_frames):
        part = walk[start:start + chunk_frames]
        flat = part.reshape(-1, *part.shape[2:])
        pending: list[np.ndarray] = []
        for images in sampler.iter_images_from_ws(flat, noise_mode, batch=batch):
            pending.extend(images)
            while len(pending) >= cells:
                yield image_grid(np.stack(pending[:cells]), cols=cols)
                pending = pending[cells:]


def ffmpeg_available() -> bool:
    """True when imageio-ffmpeg finds an ffmpeg binary (its wheel ships one)."""
    try:
        import imageio_ffmpeg

        return bool(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError, OSError):
        return False


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 30.0,
                bitrate: str = '16M') -> tuple[Path, int]:
    """Write frames (uint8 [H, W, C]) to an MP4 or GIF by suffix; returns (the path written, frame count).

    An MP4 without ffmpeg becomes a GIF with the same stem (a note goes to stderr). The file is
    written under a temporary name and renamed when complete.
    """
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix.lower() not in ('.mp4', '.gif'):
        raise VideoError(f'{path}: the output must end in .mp4 or .gif')
    if not path.parent.is_dir():
        raise VideoError(f'{path.parent}: no such directory')
    if path.suffix.lower() == '.mp4' and not ffmpeg_available():
        print(f'note: no ffmpeg found (pip install imageio-ffmpeg); writing a GIF instead of {path}', file=sys.stderr)
        path = path.with_suffix('.gif')
    tmp = path.with_name(f'.{path.stem}.tmp{path.suffix}')
    if path.suffix.lower() == '.mp4':
        # ffmpeg runs as a child process (fork + exec at once), which JAX's fork warning does not concern.
        warnings.filterwarnings('ignore', message=r'os\.fork\(\) was called', category=RuntimeWarning)
        writer = imageio.get_writer(tmp, format='FFMPEG', mode='I', fps=fps, codec='libx264', bitrate=bitrate,
                                    macro_block_size=1, ffmpeg_log_level='error')
    else:
        writer = imageio.get_writer(tmp, format='GIF', mode='I', duration=1000.0 / fps, loop=0)
    count = 0
    try:
        for frame in frames:
            writer.append_data(frame[..., 0] if frame.shape[-1] == 1 else frame)
            count += 1
    finally:
        writer.close()
        if count == 0 and tmp.exists():
            tmp.unlink()
    if count == 0:
        raise VideoError(f'{path}: no frames to write')
    os.replace(tmp, path)
    return path, count


def frame_strip(frames: Sequence[np.ndarray], pad: int = 4) -> np.ndarray:
    """Frames side by side with white gaps (a preview of a video as one picture)."""
    from stylegan_jax.sample import image_grid

    return image_grid(np.stack(frames), cols=len(frames), pad=pad)
