"""Checks issue 10's training contracts with run_train.py on configs/demo.py, as written:

1. memory falls with train.batch_gpu: at 128x128, batch 32, the process peak RSS with batch_gpu 4 is
   at most 0.75x that with batch_gpu 32 (one round of all 32 images);
2. --config.model.mixed_dtype=float16|bfloat16 --config.model.num_fp16_res=2 trains with every
   logged loss in loss_history.jsonl finite.

    python benchmarks/check_train_contracts.py [--only memory|precision] [--kimg-memory 0.064] [--json]
        [--extra=--config.KEY=VALUE ...]

Each run is its own process (`run_train.py ...` in a fresh workdir) and its peak RSS is read with
getrusage(RUSAGE_CHILDREN) in a wrapper process of its own, so it is that run's peak alone. The
runs are short (--kimg-memory: 2 steps of 32 by default, which includes step 0 with every phase;
--kimg-precision 0.8 = 50 steps of the demo's batch 16). Prints one PASS/FAIL line per check;
exit status 1 if any fails.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
MEMORY_RATIO = 0.75
_WRAPPER = ('import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; '
            'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(rc)')


EXTRA: list[str] = []  # --extra overrides, appended to every run


def run_train(workdir: pathlib.Path, overrides: list[str], log: pathlib.Path) -> tuple[int, int, float]:
    """(exit code, peak RSS bytes, seconds) of `run_train.py --config configs/demo.py --workdir W ...`."""
    cmd = [sys.executable, str(REPO / 'run_train.py'), '--config', str(REPO / 'configs' / 'demo.py'),
           '--workdir', str(workdir), *overrides, *EXTRA]
    t0 = time.time()
    with open(log, 'w') as f:
        p = subprocess.run([sys.executable, '-c', _WRAPPER, *cmd], stdout=subprocess.PIPE, stderr=f, text=True,
                           cwd=REPO)
    lines = p.stdout.strip().splitlines()
    with open(log, 'a') as f:
        f.write('\n'.join(lines[:-1]) + '\n')
    return p.returncode, int(lines[-1]) if lines else 0, time.time() - t0


def check_memory(tmp: pathlib.Path, kimg: float) -> dict:
    """Peak RSS at 128x128, batch 32, batch_gpu 32 vs 4."""
    out = {'check': 'memory', 'runs': {}}
    for batch_gpu in (32, 4):
        over = ['--config.data.resolution=128', '--config.model.img_resolution=128', '--config.train.batch=32',
                f'--config.train.batch_gpu={batch_gpu}', f'--config.train.total_kimg={kimg}',
                '--config.log.grid_kimg=1000', '--config.log.checkpoint_kimg=1000']
        rc, rss, secs = run_train(tmp / f'bg{batch_gpu}', over, tmp / f'bg{batch_gpu}.log')
        out['runs'][batch_gpu] = {'rc': rc, 'peak_rss_bytes': rss, 'seconds': secs, 'log': str(tmp / f'bg{batch_gpu}.log')}
    r32, r4 = out['runs'][32], out['runs'][4]
    out['ratio'] = r4['peak_rss_bytes'] / max(1, r32['peak_rss_bytes'])
    out['ok'] = r32['rc'] == 0 and r4['rc'] == 0 and out['ratio'] <= MEMORY_RATIO
    out['line'] = (f"peak RSS at 128x128, batch 32: batch_gpu 32 {r32['peak_rss_bytes'] / 2**30:.2f} GiB, "
                   f"batch_gpu 4 {r4['peak_rss_bytes'] / 2**30:.2f} GiB = {out['ratio']:.2f}x (<= {MEMORY_RATIO})"
                   + ('' if r32['rc'] == 0 and r4['rc'] == 0 else f"; exit codes {r32['rc']}, {r4['rc']}"))
    return out


def check_precision(tmp: pathlib.Path, kimg: float) -> list[dict]:
    """float16 / bfloat16 in the 2 highest resolutions: every logged loss finite."""
    results = []
    for dtype in ('float16', 'bfloat16'):
        wd = tmp / dtype
        over = [f'--config.model.mixed_dtype={dtype}', '--config.model.num_fp16_res=2',
                f'--config.train.total_kimg={kimg}', '--config.log.log_every_steps=5']
        rc, rss, secs = run_train(wd, over, tmp / f'{dtype}.log')
        hist = wd / 'loss_history.jsonl'
        records = [json.loads(line) for line in hist.read_text().splitlines() if line.strip()] if hist.is_file() else []
        losses = [(r.get('step'), k, v) for r in records for k, v in r.items() if k.startswith('Loss/')]
        bad = [(s, k, v) for s, k, v in losses if not math.isfinite(float(v))]
        ok = rc == 0 and bool(losses) and not bad
        results.append({'check': f'precision {dtype}', 'rc': rc, 'seconds': secs, 'peak_rss_bytes': rss,
                        'logged_values': len(losses), 'records': len(records), 'non_finite': bad[:5], 'ok': ok,
                        'line': f'{dtype}, num_fp16_res 2: {len(records)} log records, {len(losses)} loss values, '
                                f'{len(bad)} non-finite' + ('' if rc == 0 else f'; exit code {rc}, see {tmp}/{dtype}.log')})
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--only', choices=('memory', 'precision'), default=None)
    ap.add_argument('--kimg-memory', type=float, default=0.064, help='train.total_kimg of the memory runs')
    ap.add_argument('--kimg-precision', type=float, default=0.8, help='train.total_kimg of the precision runs')
    ap.add_argument('--keep', default=None, help='keep the workdirs and logs in this directory')
    ap.add_argument('--extra', action='append', default=[], metavar='--config.KEY=VALUE',
                    help="more run_train.py overrides for every run (e.g. --extra=--config.transfer.path= to "
                         "train the demo from scratch)")
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args(argv)
    EXTRA[:] = args.extra
    tmp = pathlib.Path(args.keep or tempfile.mkdtemp(prefix='check_train_'))
    tmp.mkdir(parents=True, exist_ok=True)
    results = []
    load = os.getloadavg()
    if args.only in (None, 'memory'):
        results.append(check_memory(tmp, args.kimg_memory))
    if args.only in (None, 'precision'):
        results += check_precision(tmp, args.kimg_precision)
    for r in results:
        print(f"{'PASS' if r['ok'] else 'FAIL'} {r['check']}: {r['line']}", flush=True)
    print(f'load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; workdirs in {tmp}')
    if args.json:
        print(json.dumps(results))
    return 0 if all(r['ok'] for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
