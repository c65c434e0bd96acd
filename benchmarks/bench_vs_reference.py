"""Side-by-side sampling benchmark: `stylegan-sample` vs the PyTorch reference `generate.py`.

Target (developers' guide): writing 256 sample PNGs -- whole process, start-up and compile included --
at least as fast as NVlabs' stylegan2-ada-pytorch `generate.py` on CPU, measured on the same machine.

Reproduce:

  git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada-ref
  pip install click                        # generate.py's only extra dependency (torch, numpy, Pillow assumed)
  # generate.py hard-codes torch.device('cuda'); for a CPU-only run change that line to
  #   device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  python benchmarks/bench_vs_reference.py --ref-dir /tmp/sg2ada-ref --seeds 0-15      # quick (~2 min)
  python benchmarks/bench_vs_reference.py --ref-dir /tmp/sg2ada-ref                  # 256 images, both tools
  python benchmarks/bench_vs_reference.py --ref-dir /tmp/sg2ada-ref --batches 1,4,8 --repeats 2

What it does:
  (a) builds a 512x512 Generator/Discriminator with the reference's own classes (training/networks.py:
      z/w 512, 8 mapping layers, channel_base 32768, channel_max 512, fp32 -- the configuration of the public
      512px anime-face models), random weights from a fixed torch seed (noise strengths, biases and w_avg
      are randomised too, so const noise and truncation are exercised; torgb weights are scaled by 0.2 so
      pixels are mostly unclipped), and pickles it the way
      training_loop.py writes network-snapshot-*.pkl ({'G','D','G_ema','training_set_kwargs','augment_pipe'},
      modules deep-copied, .eval().requires_grad_(False).cpu(), persistent classes);
  (b) times `python generate.py --outdir A --trunc 0.7 --seeds S --network snap.pkl` (whole process);
  (c) times `stylegan-convert snap.pkl --out C` (reported separately: a one-off cost), then
      `stylegan-sample --checkpoint C --seeds S --trunc 0.7 --outdir B [--batch N]` (whole process);
  (d) compares the PNGs pairwise (max |diff| in 0..255 and the fraction of values within +-1);
  (e) prints a table. Timings are wall-clock seconds of each child process, with its CPU seconds (user+sys)
      and the 1-minute load average before it started, because other work on the machine skews them.

Both tools run with their default thread settings; nothing here pins threads. On a busy machine compare the
CPU-seconds column as well as wall time. --plain-kwargs writes the nested constructor kwargs as plain dicts
instead of dnnlib.EasyDict (what train.py really pickles; both convert).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field

import numpy as np

# Runs inside a child process with the reference checkout first on sys.path, so that the persistent classes
# record the reference's own module source (as in a real training snapshot) and torch never loads here.
_BUILD_SNAPSHOT = textwrap.dedent('''
    import copy, pickle, sys
    import torch
    import dnnlib
    from training import networks
    out, resolution, seed, plain = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
    # train.py passes the nested kwargs as dnnlib.EasyDict, so real snapshots pickle dnnlib.util.EasyDict
    # inside _init_kwargs; `plain` uses dicts instead (only to work around a reader that rejects that).
    kwargs_type = dict if plain else dnnlib.EasyDict
    torch.manual_seed(seed)
    common = dict(c_dim=0, img_resolution=resolution, img_channels=3)
    G = networks.Generator(z_dim=512, w_dim=512, **common,
                           mapping_kwargs=kwargs_type(num_layers=8),
                           synthesis_kwargs=kwargs_type(channel_base=32768, channel_max=512,
                                                        num_fp16_res=0, conv_clamp=None)).train().requires_grad_(False)
    D = networks.Discriminator(**common, channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
                               block_kwargs=kwargs_type(), mapping_kwargs=kwargs_type(),
                               epilogue_kwargs=kwargs_type(mbstd_group_size=4)).train().requires_grad_(False)
    # Fresh nets have zero noise strengths, zero biases and a zero w_avg; give them values so that the
    # comparison also covers const noise, biases and truncation towards w_avg.
    with torch.no_grad():
        for name, t in list(G.named_parameters()) + list(G.named_buffers()):
            if name.endswith('noise_strength'):
                t.copy_(torch.rand([]) * 0.5)
            elif name.endswith('.bias') and '.affine.' not in name:
                t.copy_(torch.randn(t.shape) * 0.1)
            elif name.endswith('w_avg'):
                t.copy_(torch.randn(t.shape) * 0.5)
            if name.endswith('torgb.weight'):
                t.mul_(0.2)  # keeps most pixels inside [-1, 1] instead of ~half clipped, so PNGs carry signal
    G_ema = copy.deepcopy(G).eval()
    snapshot = dict(training_set_kwargs=None)
    for name, module in [('G', G), ('D', D), ('G_ema', G_ema), ('augment_pipe', None)]:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        snapshot[name] = module
    with open(out, 'wb') as f:
        pickle.dump(snapshot, f)
    print(sum(p.numel() for p in G_ema.parameters()))
''')


@dataclass
class Run:
    """One timed child process."""
    label: str
    cmd: list[str]
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    load_before: float = 0.0
    images: int = 0
    notes: list[str] = field(default_factory=list)


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7] (the syntax both tools accept)."""
    seeds: list[int] = []
    for part in text.split(','):
        m = re.fullmatch(r'\s*(\d+)\s*(?:-\s*(\d+)\s*)?', part)
        if not m:
            raise ValueError(f'bad --seeds part {part!r}')
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        seeds.extend(range(lo, hi + 1))
    return seeds


def timed(run: Run, cwd: str | None, env: dict[str, str], log_path: str) -> Run:
    """Run `run.cmd` to completion, recording wall and child CPU seconds; raise with the log tail on failure."""
    run.load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log_path, 'w') as log:
        proc = subprocess.run(run.cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    run.seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{run.label} failed (exit {proc.returncode}): {" ".join(run.cmd)}\n{tail}')
    return run


def count_pngs(outdir: str) -> int:
    return sum(1 for n in os.listdir(outdir) if re.fullmatch(r'seed\d+\.png', n))


def compare_pngs(dir_a: str, dir_b: str, seeds: list[int]) -> dict:
    """Pairwise agreement of seedNNNN.png in two folders (uint8 RGB)."""
    from PIL import Image

    worst, fracs, missing = 0, [], []
    for s in seeds:
        name = f'seed{s:04d}.png'
        pa, pb = os.path.join(dir_a, name), os.path.join(dir_b, name)
        if not (os.path.exists(pa) and os.path.exists(pb)):
            missing.append(name)
            continue
        a = np.asarray(Image.open(pa).convert('RGB'), np.int16)
        b = np.asarray(Image.open(pb).convert('RGB'), np.int16)
        if a.shape != b.shape:
            raise RuntimeError(f'{name}: shapes differ {a.shape} vs {b.shape}')
        d = np.abs(a - b)
        worst = max(worst, int(d.max()))
        fracs.append(float((d <= 1).mean()))
    return {'pairs': len(fracs), 'max_abs_diff': worst,
            'mean_frac_within_1': float(np.mean(fracs)) if fracs else float('nan'),
            'min_frac_within_1': float(np.min(fracs)) if fracs else float('nan'), 'missing': missing}


def which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f'{name}: console script not found (pip install -e . in the project first)')
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ref-dir', required=True, help='checkout of NVlabs/stylegan2-ada-pytorch')
    ap.add_argument('--seeds', default='0-255', help='seeds for both tools (default 0-255)')
    ap.add_argument('--trunc', type=float, default=0.7)
    ap.add_argument('--resolution', type=int, default=512)
    ap.add_argument('--torch-seed', type=int, default=0, help='torch.manual_seed for the random weights')
    ap.add_argument('--batches', default='default',
                    help="comma list of stylegan-sample --batch values to time; 'default' = its own choice")
    ap.add_argument('--repeats', type=int, default=1, help='time each tool this many times')
    ap.add_argument('--skip-reference', action='store_true', help='only time stylegan-sample (PNGs not compared)')
    ap.add_argument('--plain-kwargs', action='store_true',
                    help='pickle the nested constructor kwargs as dict instead of dnnlib.EasyDict (what train.py '
                         'pickles)')
    ap.add_argument('--workdir', default=None, help='keep snapshot/outputs/logs here (default: a temp dir, removed)')
    args = ap.parse_args(argv)

    ref_dir = os.path.abspath(args.ref_dir)
    if not os.path.isfile(os.path.join(ref_dir, 'generate.py')) or \
            not os.path.isfile(os.path.join(ref_dir, 'training', 'networks.py')):
        print(f'bench_vs_reference: error: {ref_dir}: not a stylegan2-ada-pytorch checkout '
              '(generate.py / training/networks.py missing)', file=sys.stderr)
        return 2
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        print(f'bench_vs_reference: error: {e}', file=sys.stderr)
        return 2
    try:
        batches = [None if b.strip() == 'default' else int(b) for b in args.batches.split(',')]
    except ValueError:
        print(f'bench_vs_reference: error: bad --batches {args.batches!r} (want e.g. default,1,8)', file=sys.stderr)
        return 2

    work = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix='bench_vs_ref_')
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ)
    ref_env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (ref_dir, env.get('PYTHONPATH')) if p))
    n = len(seeds)
    print(f'# {platform.machine()} {platform.processor()}, {os.cpu_count()} cores, python {platform.python_version()}, '
          f'{args.resolution}x{args.resolution}, {n} seeds ({args.seeds}), trunc {args.trunc}, '
          f'load {os.getloadavg()[0]:.2f}', flush=True)
    try:
        snap = os.path.join(work, 'network-snapshot-random.pkl')
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, '-c', _BUILD_SNAPSHOT, snap, str(args.resolution),
                              str(args.torch_seed), '1' if args.plain_kwargs else '0'], cwd=ref_dir, env=ref_env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f'building the reference snapshot failed:\n{out.stderr[-3000:]}')
        print(f'snapshot: {snap} ({int(out.stdout.split()[-1]):,} G params, {os.path.getsize(snap) / 2**20:.0f} MiB, '
              f'{time.perf_counter() - t0:.1f} s, nested kwargs as {"dict" if args.plain_kwargs else "dnnlib.EasyDict"})',
              flush=True)

        runs: list[Run] = []
        ours_dirs: dict[str, str] = {}
        ref_out = os.path.join(work, 'ref')
        for rep in range(args.repeats):
            if not args.skip_reference:
                shutil.rmtree(ref_out, ignore_errors=True)
                r = timed(Run(f'generate.py (reference) #{rep + 1}',
                              [sys.executable, 'generate.py', '--outdir', ref_out, '--trunc', str(args.trunc),
                               '--seeds', args.seeds, '--network', snap]),
                          ref_dir, ref_env, os.path.join(work, f'ref_{rep}.log'))
                r.images = count_pngs(ref_out)
                runs.append(r)
                print(f'  {r.label}: {r.seconds:.1f} s', flush=True)

            ckpt = os.path.join(work, f'converted_{rep}')
            shutil.rmtree(ckpt, ignore_errors=True)
            r = timed(Run(f'stylegan-convert #{rep + 1}', [which('stylegan-convert'), snap, '--out', ckpt]),
                      None, env, os.path.join(work, f'convert_{rep}.log'))
            runs.append(r)
            print(f'  {r.label}: {r.seconds:.1f} s', flush=True)

            for b in batches:
                tag = 'default' if b is None else str(b)
                ours = os.path.join(work, f'ours_b{tag}')
                shutil.rmtree(ours, ignore_errors=True)
                cmd = [which('stylegan-sample'), '--checkpoint', ckpt, '--seeds', args.seeds, '--trunc',
                       str(args.trunc), '--outdir', ours]
                if b is not None:
                    cmd += ['--batch', str(b)]
                r = timed(Run(f'stylegan-sample --batch {tag} #{rep + 1}', cmd), None, env,
                          os.path.join(work, f'ours_b{tag}_{rep}.log'))
                r.images = count_pngs(ours)
                runs.append(r)
                ours_dirs[tag] = ours
                print(f'  {r.label}: {r.seconds:.1f} s', flush=True)

        print()
        print(f"{'process':<34} {'images':>6} {'wall s':>8} {'img/s':>7} {'CPU s':>8} {'load':>5}")
        print('-' * 73)
        for r in runs:
            rate = f'{r.images / r.seconds:7.2f}' if r.images else f"{'-':>7}"
            print(f'{r.label:<34} {r.images or "-":>6} {r.seconds:8.1f} {rate} {r.cpu_seconds:8.1f} '
                  f'{r.load_before:5.2f}')
        ref_runs = [r for r in runs if r.label.startswith('generate.py')]
        if ref_runs:
            best_ref = min(r.seconds for r in ref_runs)
            print()
            for tag in ours_dirs:
                best = min(r.seconds for r in runs if r.label.startswith(f'stylegan-sample --batch {tag} '))
                print(f'stylegan-sample --batch {tag}: best {best:.1f} s vs generate.py best {best_ref:.1f} s '
                      f'-> {best_ref / best:.2f}x {"(target met)" if best <= best_ref else "(SLOWER than reference)"}')
            print()
            for tag, d in ours_dirs.items():
                c = compare_pngs(ref_out, d, seeds)
                print(f"PNG agreement (--batch {tag}): {c['pairs']} pairs, max |diff| {c['max_abs_diff']}, "
                      f"within +-1: mean {c['mean_frac_within_1']:.6f}, min {c['min_frac_within_1']:.6f}"
                      + (f", missing {len(c['missing'])}" if c['missing'] else ''))
    except RuntimeError as e:
        print(f'bench_vs_reference: error: {e}', file=sys.stderr)
        return 1
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
