"""Projection steps/s and video frames/s at 512x512 (the anime-face StyleGAN2 configuration), any backend.

    python benchmarks/bench_creator_tools.py [--resolution 512] [--steps 10] [--frames 32] [--distance pixel]

The network is bench_sample.py's (z/w 512, 8 mapping layers, channel_base 32768, channel_max 512)
with random weights; speed does not depend on the values. Projection: `projector.project` with
the pixel + Laplacian distance (or --distance vgg16 with --vgg16 FILE): the jitted chunk of --steps
steps (`projector.make_step_fn`) run twice, the second timed (steady state), the first reported
with its compilation. Video: `video.render_frames` of
a 1x1 walk, frames/s after warm-up, plus the first-batch (compile) time. Prints one JSON line each.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_sample import network_config  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--resolution', type=int, default=512)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--frames', type=int, default=32)
    p.add_argument('--batch', type=int, default=None, help='video: latents per generator batch')
    p.add_argument('--distance', choices=('pixel', 'vgg16'), default='pixel')
    p.add_argument('--vgg16', default=None)
    p.add_argument('--skip-video', action='store_true')
    args = p.parse_args()

    from stylegan_jax import networks, projector, video
    from stylegan_jax.perceptual import distance
    from stylegan_jax.sample import Sampler, z_from_seeds

    cfg = network_config(args.resolution)
    sampler = Sampler(cfg, networks.init_generator(cfg, jax.random.PRNGKey(0)))
    dev = jax.devices()[0]
    common = {'resolution': args.resolution, 'device': f'{dev.platform}:{dev.device_kind}', 'cpus': os.cpu_count(),
              'load': round(os.getloadavg()[0], 1)}

    dist = distance.vgg16(args.vgg16) if args.distance == 'vgg16' else distance.pixel()
    import jax.numpy as jnp

    from stylegan_jax import latents

    target = sampler.images_from_z(z_from_seeds([1], cfg.z_dim), 0.7)[0]
    feats = jax.jit(dist.features)(jnp.asarray(target, jnp.float32)[None] / 127.5 - 1)
    optimise = args.distance == 'vgg16'  # what --noise auto does
    run, adam = projector.make_step_fn(sampler, dist, cfg.num_ws, 'w', projector.NOISE_REG_WEIGHT, optimise)
    opt = {'w': jnp.asarray(sampler.w_avg)}
    if optimise:
        opt['noise'] = {k: jnp.asarray(v) for k, v in latents.noise_buffers(sampler.variables).items()}
    state = adam.init(opt)
    lrs, stds = projector.schedule(args.steps, 1.0)
    keys = jax.random.split(jax.random.PRNGKey(0), args.steps)
    t = time.perf_counter()
    opt, state, w, _ = run(opt, state, feats, lrs, stds, keys)
    jax.block_until_ready(w)
    first = time.perf_counter() - t  # compile + one chunk
    t = time.perf_counter()
    opt, state, w, _ = run(opt, state, feats, lrs, stds, keys)
    jax.block_until_ready(w)
    dt = time.perf_counter() - t
    print(json.dumps({'what': 'projection', 'distance': dist.name, 'noise_optimised': optimise,
                      'steps_per_s': round(args.steps / dt, 3), 'steps_timed': args.steps,
                      'first_chunk_incl_compile_s': round(first, 1), **common}), flush=True)
    if args.skip_video:
        return 0

    keys = video.seed_keyframes(sampler, list(range(4)), (1, 1), trunc=0.7)
    walk = video.interpolate(keys, max(1, args.frames // 4), 'cubic', True)
    batch = args.batch or sampler.default_batch()
    t = time.perf_counter()
    frames = video.render_frames(sampler, walk, (1, 1), batch=batch)
    for _ in range(batch):
        next(frames)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    n = sum(1 for _ in frames)
    dt = time.perf_counter() - t
    print(json.dumps({'what': 'video frames', 'frames_per_s': round(n / dt, 3), 'frames_timed': n, 'batch': batch,
                      'first_batch_s': round(warm, 1), **common}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
