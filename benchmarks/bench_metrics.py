"""Inception feature extraction throughput (images/s) of stylegan_jax.metrics, and of pytorch-fid if importable.

    python benchmarks/bench_metrics.py [--batch 32] [--iters 3] [--sizes 299,256]
                                       [--weights ../shared/fixtures/inception/pt_inception-random.pth]

Times `FeatureExtractor` (jitted Flax FID Inception, uint8 input, resize to 299 when the size differs)
on the default JAX device, after one warm-up batch (compilation excluded), and reports the
throughput of full batches. If `pytorch_fid` can be imported, the same batches go through
pytorch-fid's `InceptionV3([3])` (pool3, FID weights loaded from --weights instead of downloaded)
on CPU with torch's default threads, and the largest feature difference is printed as a cross-check.
pytorch-fid imports torchvision; a torchvision wheel whose compiled ops do not match the installed
torch fails in `torchvision/__init__`, so this script imports only `torchvision.models` (pure Python,
all that pytorch-fid uses) when the normal import fails.
Prints one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO.parent / 'shared' / 'fixtures' / 'inception' / 'pt_inception-random.pth'


def bench_jax(weights: Path, batch: int, size: int, iters: int) -> tuple[float, np.ndarray, dict]:
    import jax

    from stylegan_jax.metrics.inception import FeatureExtractor, load_params

    ext = FeatureExtractor(load_params(weights), batch)
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    x = jax.device_put(images)
    jax.block_until_ready(ext.device_batch(x)['pool'])  # compile
    t = time.perf_counter()
    for _ in range(iters):
        out = ext.device_batch(x)
    jax.block_until_ready(out['pool'])
    dt = time.perf_counter() - t
    dev = jax.devices()[0]
    return batch * iters / dt, np.asarray(out['pool']), {'device': f'{dev.platform}:{dev.device_kind}'}


def _import_pytorch_fid():
    try:
        import pytorch_fid.inception as pi
        return pi
    except ImportError:
        return None
    except RuntimeError:
        # torchvision's compiled ops do not match this torch: load only its pure-Python models.
        import importlib
        import importlib.util
        import types

        for name in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
            del sys.modules[name]
        spec = importlib.util.find_spec('torchvision')
        pkg = types.ModuleType('torchvision')
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules['torchvision'] = pkg
        pkg.models = importlib.import_module('torchvision.models')
        try:
            from importlib.metadata import version
            pkg.__version__ = version('torchvision')
        except Exception:  # pytorch-fid only reads major.minor to pick inception_v3's init arguments
            pkg.__version__ = '0.29.0'
        import pytorch_fid.inception as pi
        return pi


def bench_pytorch_fid(weights: Path, batch: int, size: int, iters: int) -> tuple[float, np.ndarray, dict] | None:
    pi = _import_pytorch_fid()
    if pi is None:
        return None
    import torch

    sd = torch.load(weights, map_location='cpu', weights_only=True)
    pi.load_state_dict_from_url = lambda *a, **k: sd  # the fixture file instead of the download
    model = pi.InceptionV3([pi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # what ToTensor gives pytorch-fid
    with torch.no_grad():
        model(x)  # warm-up
        t = time.perf_counter()
        for _ in range(iters):
            out = model(x)[0]
        dt = time.perf_counter() - t
    return batch * iters / dt, out[:, :, 0, 0].numpy(), {'torch_threads': torch.get_num_threads()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--iters', type=int, default=3)
    p.add_argument('--sizes', default='299,256', help='input sizes to time (299: no resize)')
    p.add_argument('--weights', type=Path, default=DEFAULT_WEIGHTS)
    args = p.parse_args()
    for size in [int(s) for s in args.sizes.split(',')]:
        ips, feats, info = bench_jax(args.weights, args.batch, size, args.iters)
        print(json.dumps({'impl': 'stylegan_jax', 'batch': args.batch, 'input': size, 'images_per_s': round(ips, 2),
                          'cpus': os.cpu_count(), **info}), flush=True)
        ref = bench_pytorch_fid(args.weights, args.batch, size, args.iters)
        if ref is None:
            print(json.dumps({'impl': 'pytorch_fid', 'skipped': 'pytorch_fid not importable'}), flush=True)
            continue
        ips_t, feats_t, info_t = ref
        print(json.dumps({'impl': 'pytorch_fid', 'batch': args.batch, 'input': size, 'images_per_s': round(ips_t, 2),
                          'max_abs_feature_diff_vs_jax': float(np.abs(feats_t - feats).max()), **info_t}),
              flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
