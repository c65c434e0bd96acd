"""Whole-process FID: `stylegan-metrics` against pytorch-fid's `calculate_fid_given_paths`, and where the time goes.

    python benchmarks/bench_metrics_process.py [--num 200] [--size 256]
                                               [--weights ../shared/fixtures/inception/pt_inception-random.pth]

Writes --num real and --num fake PNGs (--size px, smooth random images), then times, each in a
fresh process: `stylegan-metrics --metrics fid --no-cache` and pytorch-fid's
`calculate_fid_given_paths` (batch 50, CPU, the same weights file instead of its download). Both
FIDs are printed (they must agree). It also times the two FID formulas on the same 2048-d
features: pytorch-fid's `scipy.linalg.sqrtm` of the 2048x2048 product, and ours
(`scores.fid_from_features`: for n_real * n_fake <= 2048^2 the exact low-rank form, an n x n
eigenproblem) - the main reason the whole process is faster even where pytorch-fid computes
Inception features faster per image (see bench_metrics.py). Needs `pip install pytorch-fid`
(and torchvision; see bench_metrics.py for a torchvision that does not match torch).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO.parent / 'shared' / 'fixtures' / 'inception' / 'pt_inception-random.pth'

PYTORCH_FID = r'''
import sys, time, torch
sys.path.insert(0, {bench_dir!r})
from bench_metrics import _import_pytorch_fid
pi = _import_pytorch_fid()
sd = torch.load({weights!r}, map_location='cpu', weights_only=True)
pi.load_state_dict_from_url = lambda *a, **k: sd
from pytorch_fid import fid_score
fid = fid_score.calculate_fid_given_paths([{real!r}, {fake!r}], batch_size=50, device='cpu', dims=2048,
                                          num_workers={workers})
print('FID', fid)
'''


def make_images(folder: Path, n: int, size: int, seed: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(low).resize((size, size), Image.BICUBIC).save(folder / f'{i:05d}.png')


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout


def formula_times(n: int) -> dict:
    import scipy.linalg

    from stylegan_jax.metrics import scores

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, 2048)), rng.standard_normal((n, 2048)) + 0.1
    t = time.perf_counter()
    ours = scores.fid_from_features(a, b)
    t_ours = time.perf_counter() - t
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    t = time.perf_counter()
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))
    t_ref = time.perf_counter() - t
    return {'n': n, 'ours_s': round(t_ours, 2), 'sqrtm_s': round(t_ref, 2), 'fid_ours': ours, 'fid_sqrtm': ref}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--num', type=int, default=200)
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--weights', type=Path, default=DEFAULT_WEIGHTS)
    args = p.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        real, fake = Path(tmp) / 'real', Path(tmp) / 'fake'
        make_images(real, args.num, args.size, 1)
        make_images(fake, args.num, args.size, 2)
        t_ours, out = timed([sys.executable, '-m', 'stylegan_jax.metrics', '--metrics', 'fid', '--real', str(real),
                             '--fake', str(fake), '--inception-weights', str(args.weights), '--no-cache', '--json',
                             '--quiet'])
        fid_ours = json.loads(out.strip().splitlines()[-1])['fid']
        print(json.dumps({'what': 'stylegan-metrics', 'seconds': round(t_ours, 1), 'fid': fid_ours}), flush=True)
        code = PYTORCH_FID.format(bench_dir=str(REPO / 'benchmarks'), weights=str(args.weights), real=str(real),
                                  fake=str(fake), workers=min(8, os.cpu_count() or 1))
        t_ref, out = timed([sys.executable, '-c', code])
        fid_ref = float(out.split('FID')[-1])
    print(json.dumps({'what': 'whole process, FID of 2 x {} images at {}px'.format(args.num, args.size),
                      'stylegan_metrics_s': round(t_ours, 1), 'pytorch_fid_s': round(t_ref, 1),
                      'speedup': round(t_ref / t_ours, 2), 'fid_ours': fid_ours, 'fid_pytorch_fid': fid_ref,
                      'load_before': load, 'load_after': os.getloadavg()[0]}), flush=True)
    print(json.dumps({'what': 'FID formula on 2048-d features', **formula_times(args.num)}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
