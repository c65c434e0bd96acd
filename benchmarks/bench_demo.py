"""Time the README's main command: the transfer demo (train) + stylegan-sample, as a user runs it.

    python benchmarks/bench_demo.py [--workdir /tmp/bench_demo] [--config configs/demo.py] [--set KEY=VALUE ...]

Runs, in a fresh workdir (deleted first if it exists and holds a previous benchmark):

    python run_train.py --config CONFIG --workdir W [--config.KEY=VALUE ...]
    stylegan-sample --checkpoint W --seeds 0-15 --grid --outdir W/samples_cli

and prints one line per command (wall seconds, CPU seconds of the child processes) and the total,
with the load average before and after (other jobs on the machine inflate the times), and the SWD
line the demo prints at its end. The contract is total <= 300 s on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(cmd: list[str], log: pathlib.Path) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with open(log, 'w') as f:
        rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if rc:
        sys.exit(f'{" ".join(cmd)} failed (exit {rc}); see {log}')
    return wall, cpu, log.read_text(errors='replace')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--workdir', default='/tmp/bench_demo')
    p.add_argument('--config', default='configs/demo.py')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='--config.KEY=VALUE overrides')
    args = p.parse_args()
    work = pathlib.Path(args.workdir)
    if work.exists():
        if not (work / 'network.json').is_file() and any(work.iterdir()):
            sys.exit(f'{work}: exists and is not a previous benchmark workdir; choose another --workdir')
        shutil.rmtree(work)
    work.mkdir(parents=True)
    load0 = os.getloadavg()
    train = [sys.executable, 'run_train.py', '--config', args.config, '--workdir', str(work),
             *(f'--config.{s}' for s in args.set)]
    sample = [shutil.which('stylegan-sample') or 'stylegan-sample', '--checkpoint', str(work), '--seeds', '0-15',
              '--grid', '--outdir', str(work / 'samples_cli')]
    t_wall, t_cpu, log = _run(train, work / 'train.log')
    s_wall, s_cpu, _ = _run(sample, work / 'sample.log')
    load1 = os.getloadavg()
    swd = [line for line in log.replace('\r', '\n').splitlines() if line.startswith('SWD (x1e3) from')]
    print(f'train : {t_wall:6.1f} s wall, {t_cpu:6.1f} s CPU  ({" ".join(train[1:])})')
    print(f'sample: {s_wall:6.1f} s wall, {s_cpu:6.1f} s CPU')
    print(f'total : {t_wall + s_wall:6.1f} s wall (contract: <= 300 s on 2 cores); load average '
          f'{load0[0]:.1f} before, {load1[0]:.1f} after, {os.cpu_count()} CPUs')
    print(swd[-1] if swd else 'no SWD summary line in the training log')


if __name__ == '__main__':
    main()
