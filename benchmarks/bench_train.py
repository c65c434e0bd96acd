"""Training speed and memory of full StyleGAN2-ADA training steps (stylegan_jax.train.step).

    python benchmarks/bench_train.py --res 512 --batch 8                  # transfer512 net, 16 steps
    python benchmarks/bench_train.py --res 256 --batch 16 --precision float32
    python benchmarks/bench_train.py --res 64 --batch 4 --steps 2         # a quick check on a CPU
    python benchmarks/bench_train.py --config paper512 --json             # the config's batch and batch_gpu
    python benchmarks/bench_train.py --memory --res 512 --batch 8 --batch-gpu 4   # compiled memory only

The networks and losses are those of a config file (default: configs/paper256.py up to 256 px,
configs/transfer512.py above; --res overrides the resolution, keeping channel_base/channel_max, so
--res 64 is the top of that net) with random weights and random uint8 "real" images: speed does not
depend on values. --batch/--batch-gpu default to the config's. Each step is what run_train.py runs:
Gmain, Greg (every 4th step), Dmain, Dreg (every 16th), EMA and ADA update, pmapped over the local
devices (--devices), the state donated to each phase, the non-finite flag read one step late.

--precision: float32 (num_fp16_res 0), bfloat16 or float16 (the config's num_fp16_res, or 4 when it
has none, like the reference's paper configs; float16 also sets nonfinite='nan_to_num', conv_clamp 256
when the config has none); default: what the config says. --fp32-precision highest|high|default sets
model.fp32_precision (matmul/conv precision of the float32 layers).

Timing mode (default) reports:
  * compile: JAX's own trace + lowering + XLA compile durations (jax.monitoring events) of the first
    step, which runs every phase, so all later steps reuse the compiled code (anything compiled later
    is named);
  * sec/kimg and images/s over --steps timed steps, step indices 1..N after that warm-up step (N=16
    holds exactly one lazy-regularisation cycle: 4 Greg and 1 Dreg); the phase mix is printed;
  * per phase (--phase-repeats, default 1, 0 = skip): seconds of each phase alone, and the amortised
    sec/kimg = (Gmain + Dmain + finish + Greg/4 + Dreg/16) * 1000 / batch;
  * peak memory: device.memory_stats()['peak_bytes_in_use'] on GPU/TPU; CPUs have none, so the
    process's peak RSS is given instead; device kind, CPU model, load average before/after.

--memory reports, without running a step, XLA's compiled memory analysis of every phase (per
device): arguments (train state + batch), outputs, aliased (the donated state the outputs reuse),
temporaries (activations, gradients, workspace), total = arguments + outputs - aliased + temporaries,
and each phase's compile time; on a GPU/TPU it then runs one step (every phase) and adds the measured
peak device memory. The analysis is the compiler's buffer assignment for the backend it runs on; a
CPU compile shows how memory scales with batch_gpu, resolution and precision (the GPU compiler fuses
differently: measure there for the exact figure).

On a CPU use --precision float32: XLA:CPU has no fast bfloat16/float16 convolutions.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import sys
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration', '/jax/core/compile/jaxpr_to_mlir_module_duration',
                  '/jax/core/compile/backend_compile_duration')
PRECISIONS = ('config', 'float32', 'bfloat16', 'float16')


def cpu_model() -> str:
    """The 'model name' line of /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
            if line.lower().startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CompileTimer:
    """Sums JAX's compile-related duration events (seconds) and names the XLA-compiled functions."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0.0
        self.names: list[str] = []

    def __call__(self, event: str, duration: float, **kwargs: Any) -> None:
        if event in COMPILE_EVENTS:
            self.total += duration
            if event == COMPILE_EVENTS[-1]:
                self.names.append(str(kwargs.get('fun_name', '?')))


def apply_precision(c: Any, precision: str, fp32_precision: str | None) -> None:
    """Set config.model (and train.nonfinite) for --precision / --fp32-precision, in place."""
    if precision == 'float32':
        c.model.num_fp16_res = 0
    elif precision in ('bfloat16', 'float16'):
        c.model.mixed_dtype = precision
        c.model.num_fp16_res = int(c.model.num_fp16_res) or 4
        if precision == 'float16':
            c.train.nonfinite = 'nan_to_num'  # the reference's policy for its fp16 layers
            if not c.model.conv_clamp or c.model.conv_clamp <= 0:
                c.model.conv_clamp = 256.0
    if fp32_precision:
        c.model.fp32_precision = fp32_precision


def build(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(config, NetworkConfig, TrainConfig) for the benchmark's resolution, batch and precision."""
    from stylegan_jax.train import config_files, run_config
    name = args.config or ('paper256' if args.res <= 256 else 'transfer512')
    try:
        c = config_files.load_config(name)
    except FileNotFoundError as e:
        raise SystemExit(f'bench_train.py: error: {e}') from None
    c.model.img_resolution = args.res
    c.data.resolution = args.res
    if args.batch is not None:
        c.train.batch = args.batch
    batch = int(c.train.batch)
    per_device = batch // args.devices if batch % args.devices == 0 else 0
    if not per_device:
        raise SystemExit(f'bench_train.py: error: batch {batch} is not divisible by {args.devices} device(s)')
    gpu = int(c.train.batch_gpu) if args.batch_gpu is None else args.batch_gpu
    if gpu and per_device % gpu:
        if args.batch_gpu is not None:
            raise SystemExit(f'bench_train.py: error: --batch-gpu {gpu} does not divide the per-device batch '
                             f'{per_device}')
        gpu = 0  # the config's round size does not fit this batch: one round per device
    c.train.batch_gpu = gpu
    apply_precision(c, args.precision, args.fp32_precision)
    chunk = gpu or per_device
    if c.model.mbstd_group_size and c.model.mbstd_group_size > chunk:
        c.model.mbstd_group_size = chunk  # the reference uses min(group, batch) as well
    if 'transfer' in c:
        c.transfer.path = ''  # random weights: speed does not depend on them
    cfg = run_config.network_config(c)
    return c, cfg, run_config.train_config(c, cfg, args.devices)


def _progress(msg: str) -> None:
    print(f'[bench_train] {msg}', file=sys.stderr, flush=True)


def peak_memory(device: Any) -> dict[str, Any]:
    """Peak device bytes where the backend reports them, and the process's peak RSS."""
    out: dict[str, Any] = {'host_peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        stats = device.memory_stats() or {}
    except Exception:  # backends without memory statistics raise or return None
        stats = {}
    out['device_peak_bytes'] = stats.get('peak_bytes_in_use')
    out['device_bytes_limit'] = stats.get('bytes_limit')
    return out


def _random_batch(cfg: Any, batch: int) -> dict[str, Any]:
    """Random uint8 'real' images (speed does not depend on values)."""
    import numpy as np
    rng = np.random.default_rng(0)
    res = cfg.img_resolution
    return {'image': rng.integers(0, 256, (batch, res, res, cfg.img_channels), dtype=np.uint8),
            'label': np.zeros((batch, cfg.c_dim), np.float32)}


def describe(cfg: Any, tc: Any, trainer: Any, name: str) -> dict[str, Any]:
    """The settings part of a result record."""
    import jax
    dev = trainer.devices[0]
    return {
        'config': name, 'resolution': cfg.img_resolution, 'batch': tc.batch, 'batch_gpu': tc.batch_gpu,
        'devices': trainer.n_local, 'per_device': trainer.per_device, 'chunk': trainer.chunk,
        'rounds': trainer.n_chunks, 'num_fp16_res': cfg.num_fp16_res, 'mixed_dtype': cfg.mixed_dtype,
        'fp32_precision': cfg.fp32_precision, 'precision': 'float32' if not cfg.num_fp16_res else cfg.mixed_dtype,
        'nonfinite': tc.nonfinite, 'mbstd_group_size': cfg.mbstd_group_size, 'r1_gamma': tc.loss.r1_gamma,
        'platform': dev.platform, 'device_kind': dev.device_kind, 'cpu_model': cpu_model(),
        'cpu_count': os.cpu_count(), 'jax': jax.__version__, 'load_avg_before': os.getloadavg()}


def measure_memory(trainer: Any, ada_p: float = 0.2, only: list[str] | None = None) -> dict[str, Any]:
    """Compiled memory analysis of every phase of a lazy-regularisation cycle (or of those in `only`),
    plus the measured peak of one step on a GPU/TPU."""
    import jax
    from stylegan_jax.train import step as step_lib
    names = [n for n in trainer.phases(0) + ['finish'] if not only or n in only]  # step 0 runs every phase
    phases: dict[str, Any] = {}
    for name in names:
        _progress(f'compiling {name}')
        t0 = time.perf_counter()
        compiled = trainer.compile_phase(name)
        compile_s = time.perf_counter() - t0
        phases[name] = {**trainer.memory_analysis(name, compiled), 'compile_s': compile_s}
        del compiled
    out = {'mode': 'memory', 'phases': phases, 'state_bytes': phases[names[0]]['state_bytes'],
           'peak_phase': max(phases, key=lambda k: phases[k]['total_bytes'])}
    dev = trainer.devices[0]
    if dev.platform != 'cpu':
        _progress('running step 0 (every phase) for the measured peak')
        state = step_lib.init_state(trainer.cfg, trainer.tc, jax.random.PRNGKey(0), ada_p=ada_p)
        rstate = trainer.replicate(state)
        del state
        batch = trainer.shard(_random_batch(trainer.cfg, trainer.tc.batch // jax.process_count()))
        rstate, _, ok = trainer.step(rstate, batch, 0)
        jax.block_until_ready((rstate, ok))
    out.update(peak_memory(dev), load_avg_after=os.getloadavg())
    return out


def measure_speed(trainer: Any, steps: int = 16, phase_repeats: int = 1, ada_p: float = 0.2) -> dict[str, Any]:
    """Warm up (step 0 compiles every phase), time `steps` steps, then each phase alone."""
    import jax
    from stylegan_jax import networks
    from stylegan_jax.train import step as step_lib

    cfg, tc = trainer.cfg, trainer.tc
    timer = CompileTimer()
    jax.monitoring.register_event_duration_secs_listener(timer)
    try:
        t0 = time.perf_counter()
        state = step_lib.init_state(cfg, tc, jax.random.PRNGKey(0), ada_p=ada_p)
        rstate = jax.block_until_ready(trainer.replicate(state))
        init_s = time.perf_counter() - t0
        compile_init = timer.total
        g_params, d_params = networks.param_count(state.g_params), networks.param_count(state.d_params)
        del state
        batch = trainer.shard(_random_batch(cfg, tc.batch // jax.process_count()))

        _progress(f'init {init_s:.1f} s; compiling and running step 0 (all phases)')
        timer.reset()
        t0 = time.perf_counter()
        rstate, _, ok = trainer.step(rstate, batch, 0)
        jax.block_until_ready((rstate, ok))
        first_step_s = time.perf_counter() - t0
        compile_s, compiles = timer.total, list(timer.names)

        _progress(f'first step {first_step_s:.1f} s; timing {steps} steps')
        timer.reset()
        mix = dict.fromkeys(step_lib.PHASES, 0)
        prev_ok = None
        n_ok = 0
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            for name in trainer.phases(i):
                mix[name] += 1
            rstate, _, ok = trainer.step(rstate, batch, i)
            if prev_ok is not None:
                n_ok += bool(trainer.unreplicate(prev_ok))
            prev_ok = ok
        jax.block_until_ready(rstate)
        n_ok += bool(trainer.unreplicate(prev_ok))
        elapsed = time.perf_counter() - t0
        recompiled = list(timer.names)

        # Per phase, each alone (blocking after each call); one untimed call first in case it compiles.
        # The state is donated: every call continues from the previous call's output.
        _progress(f'{steps} steps {elapsed:.1f} s; per-phase timings x{phase_repeats}')
        phases: dict[str, float] = {}
        timer.reset()
        if phase_repeats > 0:
            for name in trainer.phases(0) + ['finish']:
                times = []
                for r in range(phase_repeats + 1):
                    t = time.perf_counter()
                    if name == 'finish':
                        rstate, _ = trainer.p_finish(rstate, ok)
                    else:
                        first = name in ('Gmain', 'Gboth')
                        rstate, _, ok = trainer.p_phase[name](rstate, batch, None if first else ok)
                    jax.block_until_ready(rstate)
                    if r:
                        times.append(time.perf_counter() - t)
                phases[name] = statistics.median(times)
        phase_compiles = list(timer.names)
    finally:
        jax.monitoring.unregister_event_duration_listener(timer)

    kimg = steps * tc.batch / 1000
    out = {
        'mode': 'timing', 'g_params': g_params, 'd_params': d_params,
        'init_s': init_s, 'init_compile_s': compile_init, 'first_step_s': first_step_s, 'compile_s': compile_s,
        'compiled_programs': compiles, 'recompiled_in_timed_steps': recompiled,
        'compiled_in_phase_pass': phase_compiles,
        'steps': steps, 'phase_mix': {k: v for k, v in mix.items() if v}, 'finite_steps': n_ok,
        'timed_s': elapsed, 'sec_per_step': elapsed / steps, 'sec_per_kimg': elapsed / kimg,
        'images_per_s': steps * tc.batch / elapsed, 'phase_s': phases, 'load_avg_after': os.getloadavg(),
    }
    if phases:
        g_reg = tc.g_reg_interval or 1
        d_reg = tc.d_reg_interval or 1
        amort = sum(v / (g_reg if k == 'Greg' else d_reg if k == 'Dreg' else 1) for k, v in phases.items())
        out['sec_per_step_amortized'] = amort
        out['sec_per_kimg_amortized'] = amort * 1000 / tc.batch
        out['images_per_s_amortized'] = tc.batch / amort
    out.update(peak_memory(trainer.devices[0]))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark of the command line: build from the config, then measure memory or speed."""
    import jax
    from stylegan_jax.train import step as step_lib
    _, cfg, tc = build(args)
    trainer = step_lib.Trainer(cfg, tc, jax.local_devices()[:args.devices])
    out = describe(cfg, tc, trainer, args.config or ('paper256' if args.res <= 256 else 'transfer512'))
    if args.memory:
        out.update(measure_memory(trainer, args.ada_p, args.phases.split(',') if args.phases else None))
    else:
        out.update(measure_speed(trainer, args.steps, args.phase_repeats, args.ada_p))
    return out


def _mib(b: Any) -> str:
    return 'n/a' if b is None else f'{b / 2**20:,.0f} MiB'


def _header(r: dict[str, Any]) -> list[str]:
    return [
        f"# {r['platform']}:{r['device_kind']} x{r['devices']}; CPU {r['cpu_model']} ({r['cpu_count']} cores); "
        f"jax {r['jax']}; load avg {r['load_avg_before'][0]:.2f} before, {r['load_avg_after'][0]:.2f} after",
        f"net {r['config']} at {r['resolution']}x{r['resolution']}: batch {r['batch']} ({r['per_device']}/device "
        f"in {r['rounds']} rounds of {r['chunk']}), {r['precision']} (num_fp16_res {r['num_fp16_res']}, "
        f"fp32_precision {r['fp32_precision']}, nonfinite {r['nonfinite']}), mbstd {r['mbstd_group_size']}",
    ]


def report(r: dict[str, Any]) -> str:
    """Human-readable summary of a result record."""
    lines = _header(r)
    if r['mode'] == 'memory':
        gib = lambda b: f'{b / 2**30:7.2f}'  # noqa: E731
        lines.append(f"compiled memory per device (GiB): train state {r['state_bytes'] / 2**30:.2f}")
        lines.append(f"{'phase':8} {'args':>7} {'outputs':>7} {'aliased':>7} {'temps':>7} {'total':>7} {'compile s':>9}")
        for name, m in r['phases'].items():
            lines.append(f"{name:8} {gib(m['argument_bytes'])} {gib(m['output_bytes'])} {gib(m['alias_bytes'])} "
                         f"{gib(m['temp_bytes'])} {gib(m['total_bytes'])} {m['compile_s']:9.1f}")
        peak = r['phases'][r['peak_phase']]['total_bytes']
        lines.append(f"peak by analysis: {r['peak_phase']} {peak / 2**30:.2f} GiB; measured peak device memory "
                     f"{_mib(r['device_peak_bytes'])} (limit {_mib(r['device_bytes_limit'])}); host peak RSS "
                     f"{_mib(r['host_peak_rss_bytes'])}")
        return '\n'.join(lines)
    lines += [
        f"G {r['g_params']:,} + D {r['d_params']:,} params; init {r['init_s']:.1f} s; first step "
        f"{r['first_step_s']:.1f} s, of which compile {r['compile_s']:.1f} s ({len(r['compiled_programs'])} programs); "
        f"compiled while timing: {', '.join(r['recompiled_in_timed_steps']) or 'nothing'}"
        + (f"; before the phase timings: {', '.join(r['compiled_in_phase_pass'])}" if r['compiled_in_phase_pass'] else ''),
        f"{r['steps']} steps ({', '.join(f'{k} x{v}' for k, v in r['phase_mix'].items())}): "
        f"{r['sec_per_step']:.3f} s/step, {r['sec_per_kimg']:.1f} sec/kimg, {r['images_per_s']:.2f} images/s "
        f"({r['finite_steps']}/{r['steps']} finite)",
    ]
    if r['phase_s']:
        lines.append('phases: ' + ', '.join(f'{k} {v:.3f} s' for k, v in r['phase_s'].items())
                     + f"; amortised {r['sec_per_kimg_amortized']:.1f} sec/kimg, "
                       f"{r['images_per_s_amortized']:.2f} images/s")
    lines.append(f"peak device memory {_mib(r['device_peak_bytes'])} (limit {_mib(r['device_bytes_limit'])}); "
                 f"host peak RSS {_mib(r['host_peak_rss_bytes'])}")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--res', type=int, default=512, help='resolution (default 512)')
    ap.add_argument('--batch', type=int, default=None, help="global batch (default: the config's)")
    ap.add_argument('--batch-gpu', type=int, default=None,
                    help="images per accumulation round (default: the config's if it fits; 0 = per-device batch)")
    ap.add_argument('--steps', type=int, default=16, help='timed steps after the warm-up step (default 16)')
    ap.add_argument('--precision', choices=PRECISIONS, default='config',
                    help="float32, bfloat16 or float16 in the top resolutions (default: the config's)")
    ap.add_argument('--fp32-precision', choices=('highest', 'high', 'default'), default=None,
                    help="model.fp32_precision (default: the config's)")
    ap.add_argument('--config', default=None,
                    help='configs/NAME.py for networks and losses (default paper256 up to 256 px, else transfer512)')
    ap.add_argument('--devices', type=int, default=None, help='local devices to pmap over (default all)')
    ap.add_argument('--ada-p', type=float, default=0.2, help='ADA probability held during the run (default 0.2)')
    ap.add_argument('--phase-repeats', type=int, default=1, help='timings per phase alone (default 1; 0 = skip)')
    ap.add_argument('--memory', action='store_true', help='compiled memory analysis per phase (no timing)')
    ap.add_argument('--phases', default=None, help='--memory: only these phases (e.g. Gmain,Dmain; default all)')
    ap.add_argument('--json', action='store_true', help='print the result as one JSON object (last line)')
    args = ap.parse_args(argv)
    if args.res < 4 or args.res & (args.res - 1):
        ap.error(f'--res must be a power of two >= 4, got {args.res}')
    if (args.batch is not None and args.batch < 1) or args.steps < 1:
        ap.error('--batch and --steps must be >= 1')
    import jax
    args.devices = args.devices or jax.local_device_count()
    if not 1 <= args.devices <= jax.local_device_count():
        ap.error(f'--devices must be in 1..{jax.local_device_count()}')
    r = run(args)
    print(report(r), flush=True)
    if args.json:
        print(json.dumps(r))
    return 0


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    sys.exit(main())
