"""Generator throughput and whole-process sampling time.

  python benchmarks/bench_sample.py                      # G images/s at 512x512, batch 1 and 16
  python benchmarks/bench_sample.py --whole-process 256  # + time of `stylegan-sample` writing 256 PNGs
  python benchmarks/bench_sample.py --compile-cache 4    # first vs second `stylegan-sample` run, cache on/off

The network is the configuration of the public 512px anime-face StyleGAN2 models (z/w 512, 8 mapping
layers, channel_base 32768, channel_max 512) with random weights: speed does not depend on values.
Compile time is reported separately from steady-state throughput.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np


def network_config(resolution: int):
    from stylegan_jax.networks import NetworkConfig
    return NetworkConfig(z_dim=512, w_dim=512, img_resolution=resolution, mapping_layers=8,
                         channel_base=32768, channel_max=512)


def bench_generator(resolution: int, batch: int, iters: int) -> dict:
    from stylegan_jax import networks
    cfg = network_config(resolution)
    variables = networks.init_generator(cfg, jax.random.PRNGKey(0))
    g = networks.Generator(cfg)
    fn = jax.jit(lambda v, z: g.apply(v, z, None, 1.0, None, 'const'))
    z = jnp.asarray(np.random.RandomState(0).randn(batch, cfg.z_dim), jnp.float32)
    t0 = time.perf_counter()
    fn(variables, z).block_until_ready()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iters):
        out = fn(variables, z)
    out.block_until_ready()
    dt = time.perf_counter() - t0
    return {'resolution': resolution, 'batch': batch, 'compile_s': compile_s, 'images_per_s': batch * iters / dt,
            'params': networks.param_count(variables['params'])}


def bench_whole_process(resolution: int, n_images: int, batch: int | None) -> dict:
    from stylegan_jax import checkpoint, networks
    cfg = network_config(resolution)
    tmp = tempfile.mkdtemp()
    try:
        ckpt = os.path.join(tmp, 'ckpt')
        checkpoint.save_networks(ckpt, cfg, {'G_ema': networks.init_generator(cfg, jax.random.PRNGKey(0))},
                                 {'source_format': 'random init (benchmark)'})
        cmd = [shutil.which('stylegan-sample') or 'stylegan-sample', '--checkpoint', ckpt, '--seeds',
               f'0-{n_images - 1}', '--trunc', '0.7', '--outdir', os.path.join(tmp, 'out')]
        if batch:
            cmd += ['--batch', str(batch)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        total = time.perf_counter() - t0
        n = len(os.listdir(os.path.join(tmp, 'out')))
        return {'resolution': resolution, 'images': n, 'seconds': total, 'images_per_s': n / total}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_compile_cache(resolution: int, n_images: int) -> list[dict]:
    """Wall time of two identical `stylegan-sample` runs with the persistent compilation cache, then without."""
    from stylegan_jax import checkpoint, networks
    cfg = network_config(resolution)
    tmp = tempfile.mkdtemp()
    rows = []
    try:
        ckpt = os.path.join(tmp, 'ckpt')
        checkpoint.save_networks(ckpt, cfg, {'G_ema': networks.init_generator(cfg, jax.random.PRNGKey(0))},
                                 {'source_format': 'random init (benchmark)'})
        cmd = [shutil.which('stylegan-sample') or 'stylegan-sample', '--checkpoint', ckpt, '--seeds',
               f'0-{n_images - 1}', '--outdir', os.path.join(tmp, 'out')]
        for cache in (True, False):
            env = {**os.environ, 'STYLEGAN_JAX_CACHE': os.path.join(tmp, 'cache'),
                   'STYLEGAN_JAX_NO_COMPILE_CACHE': '' if cache else '1'}
            for run in ('first', 'second'):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                rows.append({'cache': cache, 'run': run, 'seconds': time.perf_counter() - t0})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--resolution', type=int, default=512)
    ap.add_argument('--batches', default='1,16')
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--whole-process', type=int, default=0, metavar='N',
                    help='also time `stylegan-sample` writing N PNGs (start-up and compile included)')
    ap.add_argument('--batch', type=int, default=None, help='--batch for the whole-process run')
    ap.add_argument('--compile-cache', type=int, default=0, metavar='N',
                    help='time two `stylegan-sample` runs of N images with and without the compilation cache')
    args = ap.parse_args()
    dev = jax.devices()[0]
    if args.compile_cache:
        print(f'# load {os.getloadavg()[0]:.1f}')
        for r in bench_compile_cache(args.resolution, args.compile_cache):
            print(f"stylegan-sample {args.compile_cache} images at {args.resolution}px, compile cache "
                  f"{'on' if r['cache'] else 'off'}, {r['run']} run: {r['seconds']:.1f} s", flush=True)
        return
    print(f'# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, '
          f'device {dev.platform}:{dev.device_kind}')
    for b in (int(x) for x in args.batches.split(',')):
        r = bench_generator(args.resolution, b, args.iters)
        print(f"G {r['resolution']}x{r['resolution']} ({r['params'] / 1e6:.1f}M params) batch {b}: "
              f"{r['images_per_s']:.2f} images/s (compile {r['compile_s']:.1f} s)", flush=True)
    if args.whole_process:
        r = bench_whole_process(args.resolution, args.whole_process, args.batch)
        print(f"stylegan-sample {r['images']} PNGs at {r['resolution']}x{r['resolution']}: {r['seconds']:.1f} s "
              f"whole process ({r['images_per_s']:.2f} images/s)")


if __name__ == '__main__':
    sys.exit(main())
