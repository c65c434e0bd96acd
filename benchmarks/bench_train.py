"""Training speed: sec/kimg and images/s of full StyleGAN2-ADA training steps (stylegan_jax.train.step).

    python benchmarks/bench_train.py --res 512 --batch 8               # transfer512 net, 16 steps
    python benchmarks/bench_train.py --res 256 --batch 16 --bf16 0     # paper256 net, float32
    python benchmarks/bench_train.py --res 64 --batch 4 --steps 2      # a quick check on a CPU
    python benchmarks/bench_train.py --config paper512 --res 512 --batch 64 --json

The networks and losses are those of a config file (default: configs/paper256.py up to 256 px,
configs/transfer512.py above; --res overrides the resolution, keeping channel_base/channel_max, so
--res 64 is the top of that net) with random weights and random uint8 "real" images: speed does not
depend on values. Each step is what run_train.py runs: Gmain, Greg (every 4th step), Dmain, Dreg
(every 16th), EMA and ADA update, pmapped over all local devices (--devices), batch passed from the
host every step, the NaN guard read one step late.

What is reported:
  * compile: JAX's own trace + lowering + XLA compile durations (jax.monitoring events) of the first
    step, which runs every phase, so all later steps reuse the compiled code (the names of anything
    compiled later are printed: normally only jit(squeeze), the NaN guard's read of ok[0]);
  * sec/kimg and images/s over --steps timed steps, step indices 1..N after that warm-up step (N=16
    holds exactly one lazy-regularisation cycle: 4 Greg and 1 Dreg); the phase mix is printed;
  * per phase (--phase-repeats, default 1, 0 = skip): seconds of each phase alone, and the amortised
    sec/kimg = (Gmain + Dmain + finish + Greg/4 + Dreg/16) * 1000 / batch, the long-run rate even
    when --steps is too small to hold a whole cycle;
  * device (jax.devices()[0].device_kind), CPU model (/proc/cpuinfo), load average before/after (the
    machine may be shared), peak device memory (device.memory_stats()['peak_bytes_in_use'] on GPU/TPU;
    CPUs have none: the process's peak RSS is given instead).

On a CPU use --bf16 0: XLA:CPU has no fast bfloat16 convolutions (measured: 2x slower steps at 64 px).
"""
from __future__ import annotations

import argparse
import importlib.util
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


def cpu_model() -> str:
    """The 'model name' line of /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
            if line.lower().startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_config(name: str) -> Any:
    """get_config() of configs/NAME.py (or of a path ending in .py)."""
    path = pathlib.Path(name) if name.endswith('.py') else REPO / 'configs' / f'{name}.py'
    if not path.is_file():
        raise SystemExit(f'bench_train.py: error: {path}: config file not found')
    spec = importlib.util.spec_from_file_location(f'_bench_config_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


class CompileTimer:
    """Sums JAX's compile-related duration events (seconds) and names the XLA-compiled functions."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0.0
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)

    def __call__(self, event: str, duration: float, **kwargs: Any) -> None:
        if event in COMPILE_EVENTS:
            self.total += duration
            if event == COMPILE_EVENTS[-1]:
                self.names.append(str(kwargs.get('fun_name', '?')))


def build(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(config, NetworkConfig, TrainConfig) for the benchmark's resolution, batch and precision."""
    from stylegan_jax.train import loop
    c = load_config(args.config or ('paper256' if args.res <= 256 else 'transfer512'))
    c.model.img_resolution = args.res
    c.data.resolution = args.res
    c.train.batch = args.batch
    gpu = int(c.train.batch_gpu)
    if args.batch_gpu is not None:
        gpu = args.batch_gpu
    per_device = args.batch // args.devices if args.batch % args.devices == 0 else 0
    if not per_device:
        raise SystemExit(f'bench_train.py: error: --batch {args.batch} is not divisible by {args.devices} device(s)')
    if gpu and per_device % gpu:
        gpu = 0  # the config's chunk does not fit this batch: one chunk per device
    c.train.batch_gpu = gpu
    if args.bf16 is not None:
        c.model.num_fp16_res = args.bf16
    chunk = gpu or per_device
    if c.model.mbstd_group_size and c.model.mbstd_group_size > chunk:
        c.model.mbstd_group_size = chunk  # the reference uses min(group, batch) as well
    cfg = loop.network_config(c)
    return c, cfg, loop.train_config(c, cfg)


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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up, time; returns the result record."""
    import jax
    import numpy as np
    from stylegan_jax import networks
    from stylegan_jax.train import step as step_lib

    load_before = os.getloadavg()
    devices = jax.local_devices()[:args.devices]
    c, cfg, tc = build(args)
    timer = CompileTimer()
    jax.monitoring.register_event_duration_secs_listener(timer)

    t0 = time.perf_counter()
    trainer = step_lib.Trainer(cfg, tc, devices)
    state = step_lib.init_state(cfg, tc, jax.random.PRNGKey(0), ada_p=args.ada_p)
    rstate = jax.block_until_ready(trainer.replicate(state))
    init_s = time.perf_counter() - t0
    compile_init = timer.total
    g_params, d_params = networks.param_count(state.g_params), networks.param_count(state.d_params)
    del state

    rng = np.random.default_rng(0)
    batch = {'image': rng.integers(0, 256, (args.batch, args.res, args.res, cfg.img_channels), dtype=np.uint8),
             'label': np.zeros((args.batch, cfg.c_dim), np.float32)}

    _progress(f'init {init_s:.1f} s; compiling and running step 0 (all phases)')
    # warm-up: step 0 runs every phase (Gmain, Greg, Dmain, Dreg, finish) -> everything compiles
    timer.reset()
    t0 = time.perf_counter()
    rstate, _, ok = trainer.step(rstate, trainer.shard(batch), 0)
    jax.block_until_ready((rstate, ok))
    first_step_s = time.perf_counter() - t0
    compile_s, compiles = timer.total, list(timer.names)

    _progress(f'first step {first_step_s:.1f} s; timing {args.steps} steps')
    # timed steps 1..N, as the loop runs them (NaN guard read one step late)
    timer.reset()
    mix = {'Gmain': 0, 'Greg': 0, 'Dmain': 0, 'Dreg': 0}
    prev_ok = None
    n_ok = 0
    t0 = time.perf_counter()
    for s in range(1, args.steps + 1):
        for name in trainer.phases(s):
            mix[name] += 1
        rstate, _, ok = trainer.step(rstate, trainer.shard(batch), s)
        if prev_ok is not None:
            n_ok += bool(jax.device_get(prev_ok[0]))
        prev_ok = ok
    jax.block_until_ready(rstate)
    n_ok += bool(jax.device_get(prev_ok[0]))
    elapsed = time.perf_counter() - t0
    recompiled = list(timer.names)

    _progress(f'{args.steps} steps {elapsed:.1f} s; per-phase timings x{args.phase_repeats}')
    # per phase, each alone (blocking after each call); one untimed call first in case it compiles
    phases: dict[str, float] = {}
    timer.reset()
    if args.phase_repeats > 0:
        sharded = trainer.shard(batch)
        new, _, ok = trainer.p_g_main(rstate, sharded)
        calls = {'Gmain': lambda: trainer.p_g_main(rstate, sharded), 'Greg': lambda: trainer.p_g_reg(rstate, sharded),
                 'Dmain': lambda: trainer.p_d_main(rstate, sharded), 'Dreg': lambda: trainer.p_d_reg(rstate, sharded),
                 'finish': lambda: trainer.p_finish(rstate, new, ok)}
        for name, call in calls.items():
            jax.block_until_ready(call())
            times = []
            for _ in range(args.phase_repeats):
                t = time.perf_counter()
                jax.block_until_ready(call())
                times.append(time.perf_counter() - t)
            phases[name] = statistics.median(times)
    phase_compiles = list(timer.names)

    kimg = args.steps * args.batch / 1000
    dev = devices[0]
    out: dict[str, Any] = {
        'config': args.config or ('paper256' if args.res <= 256 else 'transfer512'),
        'resolution': args.res, 'batch': args.batch, 'batch_gpu': tc.batch_gpu, 'devices': len(devices),
        'per_device': trainer.per_device, 'chunk': trainer.chunk, 'num_fp16_res': cfg.num_fp16_res,
        'mixed_dtype': cfg.mixed_dtype, 'mbstd_group_size': cfg.mbstd_group_size, 'r1_gamma': tc.loss.r1_gamma,
        'g_params': g_params, 'd_params': d_params,
        'platform': dev.platform, 'device_kind': dev.device_kind, 'cpu_model': cpu_model(),
        'cpu_count': os.cpu_count(), 'jax': jax.__version__,
        'init_s': init_s, 'init_compile_s': compile_init, 'first_step_s': first_step_s, 'compile_s': compile_s,
        'compiled_programs': compiles, 'recompiled_in_timed_steps': recompiled,
        'compiled_in_phase_pass': phase_compiles,
        'steps': args.steps, 'phase_mix': mix, 'finite_steps': n_ok, 'timed_s': elapsed,
        'sec_per_step': elapsed / args.steps, 'sec_per_kimg': elapsed / kimg,
        'images_per_s': args.steps * args.batch / elapsed,
        'phase_s': phases,
        'load_avg_before': load_before, 'load_avg_after': os.getloadavg(),
    }
    if phases:
        amort = phases['Gmain'] + phases['Dmain'] + phases['finish'] + phases['Greg'] / 4 + phases['Dreg'] / 16
        out['sec_per_step_amortized'] = amort
        out['sec_per_kimg_amortized'] = amort * 1000 / args.batch
        out['images_per_s_amortized'] = args.batch / amort
    out.update(peak_memory(dev))
    return out


def report(r: dict[str, Any]) -> str:
    """Human-readable summary of a result record."""
    mib = lambda b: 'n/a' if b is None else f'{b / 2**20:,.0f} MiB'  # noqa: E731
    lines = [
        f"# {r['platform']}:{r['device_kind']} x{r['devices']}; CPU {r['cpu_model']} ({r['cpu_count']} cores); "
        f"jax {r['jax']}; load avg {r['load_avg_before'][0]:.2f} before, {r['load_avg_after'][0]:.2f} after",
        f"net {r['config']} at {r['resolution']}x{r['resolution']}: G {r['g_params']:,} + D {r['d_params']:,} params; "
        f"batch {r['batch']} ({r['per_device']}/device, chunks of {r['chunk']}), num_fp16_res {r['num_fp16_res']} "
        f"({r['mixed_dtype']}), mbstd {r['mbstd_group_size']}",
        f"init {r['init_s']:.1f} s; first step {r['first_step_s']:.1f} s, of which compile {r['compile_s']:.1f} s "
        f"({len(r['compiled_programs'])} programs); compiled while timing: "
        f"{', '.join(r['recompiled_in_timed_steps']) or 'nothing'}"
        + (f"; before the phase timings: {', '.join(r['compiled_in_phase_pass'])}" if r['compiled_in_phase_pass'] else ''),
        f"{r['steps']} steps ({', '.join(f'{k} x{v}' for k, v in r['phase_mix'].items())}): "
        f"{r['sec_per_step']:.3f} s/step, {r['sec_per_kimg']:.1f} sec/kimg, {r['images_per_s']:.2f} images/s "
        f"({r['finite_steps']}/{r['steps']} finite)",
    ]
    if r['phase_s']:
        lines.append('phases: ' + ', '.join(f'{k} {v:.3f} s' for k, v in r['phase_s'].items())
                     + f"; amortised {r['sec_per_kimg_amortized']:.1f} sec/kimg, "
                       f"{r['images_per_s_amortized']:.2f} images/s")
    lines.append(f"peak device memory {mib(r['device_peak_bytes'])} (limit {mib(r['device_bytes_limit'])}); "
                 f"host peak RSS {mib(r['host_peak_rss_bytes'])}")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--res', type=int, default=512, help='resolution (default 512)')
    ap.add_argument('--batch', type=int, default=None, help='global batch (default 8 at >= 512 px, 16 below)')
    ap.add_argument('--steps', type=int, default=16, help='timed steps after the warm-up step (default 16)')
    ap.add_argument('--bf16', type=int, default=None, metavar='N',
                    help="num_fp16_res: highest resolutions in bfloat16 (default: the config's, 4; 0 = float32)")
    ap.add_argument('--config', default=None,
                    help='configs/NAME.py for networks and losses (default paper256 up to 256 px, else transfer512)')
    ap.add_argument('--batch-gpu', type=int, default=None, help="chunk size (default: the config's if it fits)")
    ap.add_argument('--devices', type=int, default=None, help='local devices to pmap over (default all)')
    ap.add_argument('--ada-p', type=float, default=0.2, help='ADA probability held during the run (default 0.2)')
    ap.add_argument('--phase-repeats', type=int, default=1, help='timings per phase alone (default 1; 0 = skip)')
    ap.add_argument('--json', action='store_true', help='print the result as one JSON object (last line)')
    args = ap.parse_args(argv)
    if args.res < 4 or args.res & (args.res - 1):
        ap.error(f'--res must be a power of two >= 4, got {args.res}')
    if args.batch is None:
        args.batch = 8 if args.res >= 512 else 16
    if args.batch < 1 or args.steps < 1:
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
