"""`stylegan-sample`: seeds or saved latents -> PNGs (and grids, style-mixing grids).

    stylegan-sample --checkpoint CKPT --seeds 0-7,12 --trunc 0.5 --noise-mode const --outdir out [--grid]
    stylegan-sample --checkpoint CKPT --style-mix 0-4 10-14 --styles 0-6 --outdir out
    stylegan-sample --checkpoint CKPT --projected-w proj/projected_w.npz --outdir out       # proj00.png, ...
    stylegan-sample --checkpoint CKPT --seeds 0-7 --trunc 0.6 --trunc-center proj/projected_w.npz --outdir out

Seed `s` writes `seedSSSS.png` with the reference generate.py latent and uint8 rounding.
--projected-w renders saved latents like generate.py --projected-w (`projNN.png`, truncation not
applied); when the file holds the noise maps its projection optimised, noise mode const uses them,
so `proj.png` of `stylegan-project` is reproduced. --trunc-center truncates toward the first latent
of a file instead of w_avg (faces that vary around your character).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
from typing import Iterable, Sequence

import numpy as np

from stylegan_jax import cli_errors
from stylegan_jax.cli.common import add_checkpoint_args, load_sampler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='stylegan-sample', description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_checkpoint_args(parser)
    parser.add_argument('--seeds', default='0-7', help="seeds, e.g. '0-7,12' (default 0-7)")
    parser.add_argument('--trunc', type=float, default=1.0, help='truncation psi (default 1)')
    parser.add_argument('--trunc-cutoff', type=int, default=None, help='truncate only the first K layers')
    parser.add_argument('--trunc-center', metavar='NPZ', default=None,
                        help='truncate toward the first latent of this projected_w.npz instead of w_avg')
    parser.add_argument('--projected-w', metavar='NPZ', default=None,
                        help='render the latents of this file (projNN.png) instead of seeds')
    parser.add_argument('--noise-mode', choices=('const', 'random', 'none'), default='const')
    parser.add_argument('--class', dest='class_idx', type=int, default=None, help='class index (conditional nets)')
    parser.add_argument('--batch', type=int, default=None, help='images per device batch')
    parser.add_argument('--outdir', required=True)
    parser.add_argument('--grid', action='store_true', help='also write grid.png with all images')
    parser.add_argument('--style-mix', nargs=2, metavar=('ROWS', 'COLS'),
                        help='write a style-mixing grid: row seeds and column seeds (e.g. 0-4 10-14)')
    parser.add_argument('--styles', default='0-6', help='layers taken from the column seeds (default 0-6)')
    parser.add_argument('--seed', type=int, default=0, help='PRNG seed for noise-mode random')
    return parser


def write_pngs(batches: Iterable[np.ndarray], names: Sequence[str], outdir: str, grid: bool,
               total: int) -> None:
    """Encode PNGs on a thread pool while the next batch is generated; optional grid.png of all of them."""
    from tqdm import tqdm

    from stylegan_jax.sample import image_grid, save_png

    kept = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool, \
            tqdm(total=total, desc='sampling', unit='img', file=sys.stderr) as bar:
        jobs, done = [], 0
        for images in batches:
            for img in images:
                jobs.append(pool.submit(save_png, os.path.join(outdir, names[done]), img))
                done += 1
            if grid:
                kept.append(images)
            bar.update(len(images))
        for j in jobs:
            j.result()
    if grid:
        save_png(os.path.join(outdir, 'grid.png'), image_grid(np.concatenate(kept)))


@cli_errors.command('stylegan-sample')
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `stylegan-sample` (see the module docstring)."""
    args = build_parser().parse_args(argv)
    from stylegan_jax import compile_cache, latents
    from stylegan_jax.sample import parse_seeds, save_png, style_mix_grid, z_from_seeds

    compile_cache.enable()
    seeds = parse_seeds(args.seeds)
    sampler = load_sampler(args)
    num_ws, w_dim = sampler.num_ws, sampler.cfg.w_dim
    center = latents.load(args.trunc_center, num_ws, w_dim).ws[0] if args.trunc_center else None
    projected = latents.load(args.projected_w, num_ws, w_dim) if args.projected_w else None
    os.makedirs(args.outdir, exist_ok=True)

    if args.style_mix:
        grid = style_mix_grid(sampler, parse_seeds(args.style_mix[0]), parse_seeds(args.style_mix[1]),
                              parse_seeds(args.styles), args.trunc, args.noise_mode, args.class_idx)
        path = os.path.join(args.outdir, 'stylemix.png')
        save_png(path, grid)
        print(f'wrote {path}')
        return 0
    if projected is not None:
        if projected.noise is not None and args.noise_mode == 'const':
            sampler = sampler.with_noise(projected.noise)
            print(f'{args.projected_w}: using its optimised noise maps (noise mode const)', file=sys.stderr)
        ws = projected.ws
        names = [f'proj{i:02d}.png' for i in range(len(ws))]
        batches = sampler.iter_images_from_ws(ws, args.noise_mode, args.seed, args.batch)
    elif center is not None:
        ws = sampler.ws_from_z(z_from_seeds(seeds, sampler.z_dim), 1.0, class_idx=args.class_idx)
        ws = latents.truncate(ws, center, args.trunc, args.trunc_cutoff)
        names = [f'seed{s:04d}.png' for s in seeds]
        batches = sampler.iter_images_from_ws(ws, args.noise_mode, args.seed, args.batch)
    else:
        names = [f'seed{s:04d}.png' for s in seeds]
        batches = sampler.iter_images_from_z(z_from_seeds(seeds, sampler.z_dim), args.trunc, args.trunc_cutoff,
                                             args.noise_mode, args.seed, args.class_idx, args.batch)
    write_pngs(batches, names, args.outdir, args.grid, len(names))
    print(f'wrote {len(names)} images to {args.outdir}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
