"""benchmarks/gpu_suite.sh --cpu-smoke: the GPU suite's code paths (ours in float32, bfloat16, float16;
the reference's training step when $SG2ADA names a stylegan2-ada-pytorch checkout) at tiny sizes on CPU."""
import json
import math
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_gpu_suite_cpu_smoke(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}  # one CPU device, as a one-GPU machine
    out = tmp_path / 'results.jsonl'
    env['SUITE_OUT'] = str(out)
    sg2ada = env.get('SG2ADA')
    with_reference = bool(sg2ada) and (pathlib.Path(sg2ada) / 'training' / 'networks.py').is_file()
    if not with_reference:
        env.pop('SG2ADA', None)  # CI: our side only
    p = subprocess.run(['bash', str(REPO / 'benchmarks' / 'gpu_suite.sh'), '--cpu-smoke'], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    timed = [r for r in records if r.get('mode') != 'warm']
    ours = {r['precision']: r for r in timed if r['side'] == 'ours'}
    assert set(ours) == {'float32', 'bfloat16', 'float16'}
    assert ours['float16']['nonfinite'] == 'nan_to_num' and ours['float32']['num_fp16_res'] == 0
    for r in timed:
        assert math.isfinite(r['sec_per_kimg']) and r['sec_per_kimg'] > 0, r['label']
        assert r['peak_bytes'] > 0 and r['g_images_per_s'] > 0, r['label']
        assert not r['tensorflow_imported'], r['label']  # the GPU machine has no TensorFlow
        assert r['batch'] == 4 and r['batch_gpu'] == 2  # the smoke accumulates 2 rounds of 2
    for r in timed:
        if r['side'] == 'ours':
            assert r['finite_steps'] == r['steps'], r['label']
            assert not r['recompiled_in_timed_steps'] or r['recompiled_in_timed_steps'] == ['jit(squeeze)']
    assert len([r for r in timed if r['side'] == 'reference']) == (1 if with_reference else 0)
    # The table prints every run side by side.
    for label in ('ours float32', 'ours bfloat16', 'ours float16') + (('reference float16 x4',) if with_reference else ()):
        assert label in p.stdout, p.stdout
    assert 'sec/kimg' in p.stdout
