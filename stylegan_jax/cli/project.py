"""`stylegan-project`: find the latent that reproduces a target image (the StyleGAN2 projector, in JAX).

    stylegan-project --checkpoint CKPT --target portrait.png --outdir out [--space w|w+] [--steps 1000]
                     [--vgg16 vgg16.pt | --inception-weights pt_inception-2015-12-05-6726825d.pth]

The target is centre-cropped to a square and resized (Lanczos) to the model's resolution. Writes
  out/target.png         the target as the network sees it
  out/proj.png           the projection (model resolution)
  out/projected_w.npz    w [1, num_ws, w_dim] + the noise maps used (see stylegan_jax/latents.py);
                         `stylegan-sample --projected-w out/projected_w.npz` renders proj.png again
  out/proj.mp4           progress video, target | projection (GIF when no ffmpeg; --no-video skips it)
Distance, in order of preference: VGG16 LPIPS with --vgg16 (the reference's vgg16.pt), FID
Inception features with --inception-weights, else pixels + Laplacian pyramid. The one used is printed.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Sequence

import numpy as np

from stylegan_jax import cli_errors
from stylegan_jax.cli.common import add_checkpoint_args, load_sampler


def build_parser() -> argparse.ArgumentParser:
    from stylegan_jax import projector

    p = argparse.ArgumentParser(prog='stylegan-project', description=__doc__.split('\n\n')[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_args(p)
    p.add_argument('--target', required=True, help='target image (any size; centre-cropped and resized)')
    p.add_argument('--outdir', required=True)
    p.add_argument('--space', choices=projector.SPACES, default='w', help='optimise one w (default) or one per layer')
    p.add_argument('--steps', type=int, default=projector.NUM_STEPS, help=f'optimisation steps ({projector.NUM_STEPS})')
    p.add_argument('--noise', choices=projector.NOISE_MODES, default='auto',
                   help='optimise the noise maps (reference), keep them fixed, or auto: optimise with VGG16 only')
    p.add_argument('--vgg16', metavar='FILE', default=None, help="the reference's vgg16.pt (LPIPS distance)")
    p.add_argument('--inception-weights', metavar='FILE', default=None,
                   help='FID Inception weights (distance on its pool3 features, when no --vgg16)')
    p.add_argument('--lr', type=float, default=projector.INITIAL_LR, help=f'initial learning rate ({projector.INITIAL_LR})')
    p.add_argument('--seed', type=int, default=0, help='seed of the latent noise')
    p.add_argument('--class', dest='class_idx', type=int, default=None, help='class index (conditional nets)')
    p.add_argument('--video', action=argparse.BooleanOptionalAction, default=True, help='write proj.mp4 (default)')
    p.add_argument('--video-frames', type=int, default=100, help='frames of the progress video (default 100)')
    return p


@cli_errors.command('stylegan-project')
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `stylegan-project` (see the module docstring)."""
    args = build_parser().parse_args(argv)
    from stylegan_jax import compile_cache, latents, projector, video
    from stylegan_jax.perceptual import distance
    from stylegan_jax.sample import save_png

    compile_cache.enable()
    sampler = load_sampler(args)
    cfg = sampler.cfg
    target = projector.load_target(args.target, cfg.img_resolution, cfg.img_channels)
    dist = distance.choose(args.vgg16, args.inception_weights)
    os.makedirs(args.outdir, exist_ok=True)
    print(f'distance: {dist.name} ({dist.description})')
    t0 = time.time()
    result = projector.project(sampler, target, dist, args.steps, args.space, args.seed, args.class_idx,
                               initial_lr=args.lr, noise=args.noise)
    dt = time.time() - t0
    print(f'{args.steps} steps in {dt:.1f} s ({args.steps / dt:.2f} steps/s, compilation included); noise maps '
          f'{"optimised" if result.noise_optimised else "fixed"}; final distance {result.dist_steps[-1]:.5g}')
    final = sampler.with_noise(result.noise)
    proj = final.images_from_ws(result.ws[None])[0]
    save_png(os.path.join(args.outdir, 'target.png'), target)
    save_png(os.path.join(args.outdir, 'proj.png'), proj)
    meta = {'checkpoint': os.path.abspath(args.checkpoint), 'target': os.path.abspath(args.target),
            'distance': dist.name, 'space': args.space, 'steps': args.steps, 'noise': args.noise,
            'noise_optimised': result.noise_optimised, 'psnr_db': round(projector.psnr(proj, target), 3)}
    latents.save(os.path.join(args.outdir, 'projected_w.npz'), result.ws[None], result.noise, meta)
    print(f'PSNR proj.png vs target.png: {meta["psnr_db"]:.2f} dB')
    if args.video:
        idx = np.unique(np.linspace(0, args.steps - 1, max(2, min(args.video_frames, args.steps))).round().astype(int))
        frames = (np.concatenate([target, img], axis=1)
                  for batch in final.iter_images_from_ws(result.ws_steps[idx]) for img in batch)
        path, n = video.write_video(os.path.join(args.outdir, 'proj.mp4'), frames, fps=10)
        print(f'wrote {path} ({n} frames)')
    print(f'wrote {args.outdir}/proj.png, target.png, projected_w.npz')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
