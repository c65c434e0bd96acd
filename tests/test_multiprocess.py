"""Multi-host training, simulated: 2 processes x 2 virtual CPU devices (jax.distributed on 127.0.0.1)
train exactly as 1 process x 4 devices: the same global batches split between the processes, one set
of snapshots and logs, and a resume of the 2-process run continuing it. The runs are
tests/multiprocess_worker.py subprocesses (the device count is fixed when jax starts)."""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
WORKER = REPO / 'tests' / 'multiprocess_worker.py'
TIMEOUT = 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch(tmp, n_proc, devices, workdir, steps, tag):
    env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': str(tmp / 'jax_cache'), 'JAX_PLATFORMS': 'cpu'}
    env.pop('XLA_FLAGS', None)
    port = _free_port()
    procs, outs = [], []
    for pid in range(n_proc):
        out = tmp / f'{tag}_p{pid}.npz'
        log = open(tmp / f'{tag}_p{pid}.log', 'w')
        cmd = [sys.executable, str(WORKER), '--devices', str(devices), '--process-id', str(pid), '--num-processes',
               str(n_proc), '--port', str(port), '--data', str(tmp / 'data'), '--workdir', str(workdir),
               '--steps', str(steps), '--out', str(out)]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO), log))
        outs.append(out)
    try:
        for proc, _ in procs:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
            log.close()
    for pid, (proc, _) in enumerate(procs):
        assert proc.returncode == 0, (tmp / f'{tag}_p{pid}.log').read_text()[-3000:]
    return [dict(np.load(o)) for o in outs]


def _tree(workdir: pathlib.Path) -> list[str]:
    """Files of a workdir (orbax data files, named by random hashes, as 'DIR/d/*'), without the TensorBoard
    files (their names hold host, pid and time)."""
    out = set()
    for p in workdir.rglob('*'):
        if p.is_file() and 'tfevents' not in p.name:
            rel = p.relative_to(workdir)
            out.add(str(rel.parent / '*') if rel.parent.name == 'd' else str(rel))
    return sorted(out)


def _status_steps(workdir: pathlib.Path) -> list[int]:
    rows = [json.loads(line) for line in (workdir / 'loss_history.jsonl').read_text().splitlines()]
    return [r['step'] for r in rows if 'Timing/sec_per_kimg' in r]


def test_two_processes_train_as_one_process_with_four_devices(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(64):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(data / f'{i:02d}.png')

    (one,) = _launch(tmp_path, 1, 4, tmp_path / 'one', 4, 'one')
    first = _launch(tmp_path, 2, 2, tmp_path / 'two', 2, 'two_a')     # 2 steps, then stopped
    second = _launch(tmp_path, 2, 2, tmp_path / 'two', 4, 'two_b')    # rerun: resumes at step 2

    # Data: each process feeds half of every global batch, the halves are disjoint, and together they
    # are the single process's batch (first the launch of steps 0-1, then the resumed steps 2-3).
    assert [int(r['start']) for r in first + second] == [0, 0, 2, 2]
    both = [np.concatenate([p0, p1], axis=1) for p0, p1 in ([r['batches'] for r in first],
                                                            [r['batches'] for r in second])]
    np.testing.assert_array_equal(np.concatenate(both), one['batches'])
    assert first[0]['batches'].shape == (2, 4, 16, 16, 3) and one['batches'].shape == (4, 8, 16, 16, 3)
    assert not np.array_equal(first[0]['batches'], first[1]['batches'])

    # The same training: every state leaf on both processes equals the single process's.
    leaves = [k for k in one if k.startswith('leaf')]
    assert len(leaves) > 20
    for r in second:
        for k in leaves:
            np.testing.assert_allclose(r[k], one[k], rtol=2e-5, atol=2e-6, err_msg=k)

    # Written once: the same snapshots and files as the single process, each logged step once.
    tree = _tree(tmp_path / 'two')
    assert tree == _tree(tmp_path / 'one')
    assert not [f for f in tree if 'process_1' in f]  # process 1 wrote no part of a snapshot
    assert sorted(p.name for p in (tmp_path / 'two' / 'checkpoints').iterdir()) == ['2', '4']
    assert _status_steps(tmp_path / 'two') == _status_steps(tmp_path / 'one') == [1, 2, 3, 4]
