"""`stylegan-video`: latent-walk / interpolation videos of a checkpoint (like StyleGAN3's gen_video.py).

    stylegan-video --checkpoint CKPT --seeds 0-31 --grid 4x2 --w-frames 60 --kind cubic --output walk.mp4
    stylegan-video --checkpoint CKPT --projected-w a/projected_w.npz b/projected_w.npz --output ab.mp4

With seeds, each grid cell walks through len(seeds) / cells keyframes (see stylegan_jax/video.py).
With --projected-w, one cell walks through the latents of the files in order (a walk between
projected portraits). The walk loops back to its start unless --no-loop. MP4 needs the ffmpeg of
imageio-ffmpeg; without it (or with a .gif name) a GIF is written. --strip PNG also writes a few
frames side by side. Prints frames/s of the generation.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import numpy as np

from stylegan_jax import cli_errors
from stylegan_jax.cli.common import add_checkpoint_args, load_sampler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='stylegan-video', description=__doc__.split('\n\n')[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_args(parser)
    parser.add_argument('--seeds', default='0-7', help="keyframe seeds, e.g. '0-31' (default 0-7)")
    parser.add_argument('--projected-w', nargs='+', metavar='NPZ', default=None,
                        help='walk through the latents of these files instead of seeds (grid 1x1)')
    parser.add_argument('--grid', default='1x1', help='COLSxROWS cells (default 1x1)')
    parser.add_argument('--w-frames', type=int, default=60, help='frames per keyframe (default 60)')
    parser.add_argument('--kind', default='cubic', choices=('cubic', 'linear'), help='interpolation (default cubic)')
    parser.add_argument('--loop', action=argparse.BooleanOptionalAction, default=True,
                        help='return to the first keyframe (default; --no-loop stops at the last)')
    parser.add_argument('--shuffle-seed', type=int, default=None, help='shuffle the seeds with this seed first')
    parser.add_argument('--trunc', type=float, default=1.0, help='truncation psi (default 1)')
    parser.add_argument('--trunc-cutoff', type=int, default=None, help='truncate only the first K layers')
    parser.add_argument('--noise-mode', choices=('const', 'random', 'none'), default='const')
    parser.add_argument('--class', dest='class_idx', type=int, default=None, help='class index (conditional nets)')
    parser.add_argument('--fps', type=float, default=60.0, help='frames per second of the file (default 60)')
    parser.add_argument('--batch', type=int, default=None, help='latents per jitted generator batch')
    parser.add_argument('--output', required=True, help='output .mp4 (or .gif)')
    parser.add_argument('--strip', metavar='PNG', default=None, help='also write 6 evenly spaced frames as one PNG')
    return parser


@cli_errors.command('stylegan-video')
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `stylegan-video` (see the module docstring)."""
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from stylegan_jax import compile_cache, latents, video
    from stylegan_jax.sample import parse_seeds, save_png

    compile_cache.enable()
    grid = video.parse_grid(args.grid)
    sampler = load_sampler(args)
    if args.projected_w:
        if grid != (1, 1):
            raise video.VideoError('--projected-w walks one cell: leave --grid at 1x1')
        keys = np.concatenate([latents.load(p, sampler.num_ws, sampler.cfg.w_dim).ws for p in args.projected_w])[None]
    else:
        keys = video.seed_keyframes(sampler, parse_seeds(args.seeds), grid, args.trunc, args.trunc_cutoff,
                                    args.class_idx, args.shuffle_seed)
    if keys.shape[1] == 1:
        print('note: one keyframe per cell, so the video stands still: give more seeds than cells', file=sys.stderr)
    walk = video.interpolate(keys, args.w_frames, args.kind, args.loop)
    strip_at = set(np.linspace(0, len(walk) - 1, 6).round().astype(int).tolist()) if args.strip else set()
    strip: list[np.ndarray] = []
    t0 = time.time()

    def frames():
        with tqdm(total=len(walk), desc='video', unit='frame', file=sys.stderr) as bar:
            for i, frame in enumerate(video.render_frames(sampler, walk, grid, args.noise_mode, args.batch)):
                if i in strip_at:
                    strip.append(frame)
                bar.update(1)
                yield frame

    path, count = video.write_video(args.output, frames(), args.fps)
    dt = time.time() - t0
    cells = grid[0] * grid[1]
    print(f'wrote {path}: {count} frames of {cells} cell(s) at {sampler.resolution}px in {dt:.1f} s '
          f'({count / dt:.2f} frames/s, {count * cells / dt:.2f} images/s, compilation included)')
    if args.strip:
        save_png(args.strip, video.frame_strip(strip))
        print(f'wrote {args.strip}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
