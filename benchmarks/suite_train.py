"""The measurements of benchmarks/gpu_suite.sh: ours and the PyTorch reference's training step at equal
config, one measurement per process (peak memory is per process), as JSON lines; then the table.

    python benchmarks/suite_train.py ours --res 256 --precision bfloat16 --out R.jsonl [--smoke] [--warm-only]
    SG2ADA=/path/to/stylegan2-ada-pytorch python benchmarks/suite_train.py reference --res 256 --out R.jsonl
    python benchmarks/suite_train.py table R.jsonl

The config is the reference's `train.py --cfg=auto --gpus=1` at the resolution (cfg_specs 'auto'):
mb = min(4096 // res, 32) clipped to [1, 64], batch_gpu = mb, mbstd = min(mb, 4), fmaps 1 at >= 512
else 0.5 (channel_base 32768 * fmaps, channel_max 512), 2 mapping layers, lr 0.0025, gamma
0.0002 res^2 / mb, ema mb * 10 / 32 kimg with ramp-up 0.05, z/w 512, conv_clamp 256; the 4 highest
resolutions in float16 for the reference (train.py's default for every cfg), in float32 / bfloat16 /
float16 for ours. Both sides: ADA 'bgc' at a fixed p = 0.2 (the adaptive update costs nothing),
lazy R1 every 16 and path length every 4 steps, style mixing 0.9, Adam betas (0, 0.99) with the
lazy-regularisation correction, the reference's nan_to_num of gradients (ours: float16 only), and
TF32 off (the reference's training_loop sets allow_tf32 False; ours: fp32_precision 'highest').
--smoke: the same at tiny sizes (z/w 32, channel_base 256, channel_max 32, batch 4 in rounds of 2).

sec/kimg is measured over steps 1..N after a warm-up step 0 that runs every phase (N = 16 holds one
lazy-regularisation cycle, 4 Greg + 1 Dreg, on both sides); peak memory is the allocator's peak
(ours: device.memory_stats()['peak_bytes_in_use']; reference: torch.cuda.max_memory_allocated();
on CPU both report the process's peak RSS instead); G images/s is the EMA generator's forward pass
(noise const) on batches of 16 (4 in --smoke), after one untimed batch.

The reference is imported from the checkout at $SG2ADA at run time; nothing of it is copied here.
Its custom CUDA ops (bias_act, upfirdn2d) are compiled by torch on first use (needs ninja and the
CUDA toolkit); where that fails it falls back to its slower reference implementations, and the table
says which ran. On a Python without distutils (3.12+) or without `requests`, placeholders for the
two names it imports but does not use here (distutils.util.strtobool, requests) are installed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import resource
import sys
import time
import types
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_train (the measurement code shared with the single benchmark)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One training configuration, the same for ours and the reference."""
    res: int
    batch: int
    batch_gpu: int
    mbstd: int
    channel_base: int
    channel_max: int
    z_dim: int
    mapping_layers: int
    lr: float
    gamma: float
    ema_kimg: float
    num_fp16_res: int = 4
    conv_clamp: float = 256.0
    ada_p: float = 0.2
    g_images: int = 16        # G images/s: batch
    g_iters: int = 8          # G images/s: timed batches
    smoke: bool = False


def auto_spec(res: int, smoke: bool = False, batch_gpu: int | None = None) -> Spec:
    """The reference's cfg 'auto' for one GPU at `res` (or the tiny --smoke variant)."""
    if smoke:
        mb, base, cmax, z, mbstd = 4, 256, 32, 32, 2
        batch_gpu = batch_gpu or 2
        g_images, g_iters = 4, 2
    else:
        mb = max(min(min(4096 // res, 32), 64), 1)
        base, cmax, z, mbstd = int((1 if res >= 512 else 0.5) * 32768), 512, 512, min(mb, 4)
        g_images, g_iters = 16, 8
    return Spec(res=res, batch=mb, batch_gpu=batch_gpu or mb, mbstd=min(mbstd, batch_gpu or mb), channel_base=base,
                channel_max=cmax, z_dim=z, mapping_layers=2, lr=0.002 if res >= 1024 else 0.0025,
                gamma=0.0002 * res ** 2 / mb, ema_kimg=mb * 10 / 32, g_images=g_images, g_iters=g_iters, smoke=smoke)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _timed(fn: Any, n: int, sync: Any) -> float:
    fn()  # untimed: compiles / autotunes
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- ours

def ours_trainer(spec: Spec, precision: str, fp32_precision: str = 'highest') -> Any:
    """Our Trainer for `spec` in `precision` ('float32' | 'bfloat16' | 'float16'), on one device."""
    import jax
    from stylegan_jax import networks
    from stylegan_jax.train import augment as aug
    from stylegan_jax.train import losses
    from stylegan_jax.train import step as step_lib
    cfg = networks.NetworkConfig(
        z_dim=spec.z_dim, w_dim=spec.z_dim, img_resolution=spec.res, mapping_layers=spec.mapping_layers,
        channel_base=spec.channel_base, channel_max=spec.channel_max,
        num_fp16_res=0 if precision == 'float32' else spec.num_fp16_res,
        mixed_dtype='bfloat16' if precision == 'float32' else precision, fp32_precision=fp32_precision,
        conv_clamp=spec.conv_clamp, mbstd_group_size=spec.mbstd)
    tc = step_lib.TrainConfig(
        batch=spec.batch, batch_gpu=spec.batch_gpu, g_lr=spec.lr, d_lr=spec.lr, ema_kimg=spec.ema_kimg,
        ema_rampup=0.05, ada_target=None, nonfinite='nan_to_num' if precision == 'float16' else 'skip',
        loss=losses.LossConfig(r1_gamma=spec.gamma, augment_spec=aug.AugmentSpec.preset('bgc')))
    return step_lib.Trainer(cfg, tc, jax.local_devices()[:1])


def ours_g_images_per_s(cfg: Any, n: int, iters: int) -> float:
    import jax
    from stylegan_jax import networks
    variables = networks.init_generator(cfg, jax.random.PRNGKey(0))
    gen = jax.jit(lambda v, z: networks.Generator(cfg).apply(v, z, None, 1.0, None, 'const'))
    z = jax.random.normal(jax.random.PRNGKey(1), (n, cfg.z_dim))
    out: list = []
    elapsed = _timed(lambda: out.append(gen(variables, z)), iters, lambda: jax.block_until_ready(out[-1]))
    return n * iters / elapsed


def run_ours(spec: Spec, precision: str, steps: int, warm_only: bool, fp32_precision: str) -> dict[str, Any]:
    import jax

    import bench_train
    from stylegan_jax import compile_cache
    cache = compile_cache.enable(os.environ.get('SUITE_COMPILE_CACHE') or None)
    trainer = ours_trainer(spec, precision, fp32_precision)
    rec = bench_train.describe(trainer.cfg, trainer.tc, trainer, 'cfg auto, 1 GPU' + (' (smoke)' if spec.smoke else ''))
    rec.update(side='ours', label=f'ours {precision}', compile_cache=cache)
    if warm_only:  # compile everything (fills the persistent cache for the timed run), measure nothing else
        t0 = time.perf_counter()
        rec.update(bench_train.measure_speed(trainer, steps=1, phase_repeats=0, ada_p=spec.ada_p))
        rec.update(mode='warm', warm_s=time.perf_counter() - t0)
        return rec
    rec.update(bench_train.measure_speed(trainer, steps=steps, phase_repeats=1, ada_p=spec.ada_p))
    rec['g_images_per_s'] = ours_g_images_per_s(trainer.cfg, spec.g_images, spec.g_iters)
    rec['peak_bytes'] = rec['device_peak_bytes'] if rec['device_peak_bytes'] is not None else _peak_rss()
    rec['peak_kind'] = 'device' if rec['device_peak_bytes'] is not None else 'host RSS'
    rec['jax_devices'] = [str(d) for d in jax.local_devices()[:1]]
    return rec


# --------------------------------------------------------------------------- the reference

def _install_placeholders() -> list[str]:
    """Modules the reference imports but does not use here, when this Python lacks them."""
    made = []
    try:
        import distutils.util  # noqa: F401  (removed from the standard library in Python 3.12)
    except ImportError:
        def strtobool(value: str) -> int:
            v = value.lower()
            if v in ('y', 'yes', 't', 'true', 'on', '1'):
                return 1
            if v in ('n', 'no', 'f', 'false', 'off', '0'):
                return 0
            raise ValueError(f'invalid truth value {value!r}')
        pkg, util = types.ModuleType('distutils'), types.ModuleType('distutils.util')
        util.strtobool = strtobool
        pkg.util = util
        sys.modules.update({'distutils': pkg, 'distutils.util': util})
        made.append('distutils.util')
    try:
        import requests  # noqa: F401  (dnnlib.util.open_url only: downloads, never called here)
    except ImportError:
        sys.modules['requests'] = types.ModuleType('requests')
        made.append('requests')
    return made


def import_reference(path: str) -> tuple[dict[str, Any], list[str]]:
    """The reference's modules from the checkout at `path`."""
    if not pathlib.Path(path, 'training', 'networks.py').is_file():
        raise SystemExit(f'suite_train.py: error: {path}: not a stylegan2-ada-pytorch checkout '
                         '(no training/networks.py); set SG2ADA')
    made = _install_placeholders()
    sys.path.insert(0, str(path))
    import training.augment
    import training.loss
    import training.networks
    from torch_utils.ops import bias_act, conv2d_gradfix, grid_sample_gradfix, upfirdn2d
    return {'networks': training.networks, 'loss': training.loss, 'augment': training.augment,
            'bias_act': bias_act, 'upfirdn2d': upfirdn2d, 'conv2d_gradfix': conv2d_gradfix,
            'grid_sample_gradfix': grid_sample_gradfix}, made


class ReferenceStep:
    """The reference's training step (training_loop.py's inner loop) driven with its own networks,
    loss and augmentation pipe: phases Gmain, Greg/4, Dmain, Dreg/16, each accumulating gradients over
    rounds of batch_gpu, nan_to_num of the gradients, Adam; then the G EMA."""

    def __init__(self, ref: dict[str, Any], spec: Spec, fp16_res: int, device: Any) -> None:
        import copy

        import torch
        self.torch, self.spec, self.device = torch, spec, device
        nets = ref['networks']
        common = dict(channel_base=spec.channel_base, channel_max=spec.channel_max, num_fp16_res=fp16_res,
                      conv_clamp=spec.conv_clamp)
        self.G = nets.Generator(z_dim=spec.z_dim, c_dim=0, w_dim=spec.z_dim, img_resolution=spec.res, img_channels=3,
                                mapping_kwargs=dict(num_layers=spec.mapping_layers),
                                synthesis_kwargs=common).train().requires_grad_(False).to(device)
        self.D = nets.Discriminator(c_dim=0, img_resolution=spec.res, img_channels=3,
                                    epilogue_kwargs=dict(mbstd_group_size=spec.mbstd),
                                    **common).train().requires_grad_(False).to(device)
        self.G_ema = copy.deepcopy(self.G).eval()
        bgc = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
                   lumaflip=1, hue=1, saturation=1)
        self.augment_pipe = ref['augment'].AugmentPipe(**bgc).train().requires_grad_(False).to(device)
        self.augment_pipe.p.copy_(torch.as_tensor(spec.ada_p))
        self.loss = ref['loss'].StyleGAN2Loss(device=device, G_mapping=self.G.mapping, G_synthesis=self.G.synthesis,
                                              D=self.D, augment_pipe=self.augment_pipe, r1_gamma=spec.gamma)
        self.phases = []
        for name, module, interval in (('G', self.G, 4), ('D', self.D, 16)):
            c = interval / (interval + 1)
            opt = torch.optim.Adam(module.parameters(), lr=spec.lr * c, betas=(0 ** c, 0.99 ** c), eps=1e-8)
            self.phases += [(name + 'main', module, opt, 1), (name + 'reg', module, opt, interval)]
        g = torch.Generator().manual_seed(0)
        self.real = (torch.randint(0, 256, (spec.batch, 3, spec.res, spec.res), generator=g).to(device)
                     .to(torch.float32) / 127.5 - 1)
        self.c = torch.zeros((spec.batch, 0), device=device)
        self.cur_nimg = 0

    def step(self, batch_idx: int) -> None:
        torch, spec = self.torch, self.spec
        reals, cs = self.real.split(spec.batch_gpu), self.c.split(spec.batch_gpu)
        for name, module, opt, interval in self.phases:
            if batch_idx % interval != 0:
                continue
            zs = torch.randn([spec.batch, spec.z_dim], device=self.device).split(spec.batch_gpu)
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            for real, c, z in zip(reals, cs, zs):
                self.loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=z, gen_c=c, sync=True,
                                               gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        ema_nimg = min(spec.ema_kimg * 1000, self.cur_nimg * 0.05)
        beta = 0.5 ** (spec.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self.cur_nimg += spec.batch


def run_reference(spec: Spec, steps: int, sg2ada: str) -> dict[str, Any]:
    ref, placeholders = import_reference(sg2ada)
    import torch
    cuda = torch.cuda.is_available()
    device = torch.device('cuda' if cuda else 'cpu')
    # As the reference's training_loop: cuDNN autotuning on, TF32 off, its gradfix ops enabled.
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ref['conv2d_gradfix'].enabled = True
    ref['grid_sample_gradfix'].enabled = True
    torch.manual_seed(0)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fp16_res = spec.num_fp16_res
    t0 = time.perf_counter()
    st = ReferenceStep(ref, spec, fp16_res, device)
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    st.step(0)  # every phase: cuDNN autotuning, custom-op compilation
    sync()
    first_step_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        st.step(i)
    sync()
    elapsed = time.perf_counter() - t0
    ops = {name: ('cuda plugin' if getattr(ref[name], '_plugin', None) is not None else
                  'reference implementation (fallback)' if cuda else 'reference implementation (CPU)')
           for name in ('bias_act', 'upfirdn2d')}
    z = torch.randn([spec.g_images, spec.z_dim], device=device)
    with torch.no_grad():
        g_s = _timed(lambda: st.G_ema(z, None, noise_mode='const'), spec.g_iters, sync)
    peak = torch.cuda.max_memory_allocated() if cuda else _peak_rss()
    return {
        'side': 'reference', 'label': f'reference float16 x{fp16_res}' if fp16_res else 'reference float32',
        'resolution': spec.res, 'batch': spec.batch, 'batch_gpu': spec.batch_gpu, 'rounds': spec.batch // spec.batch_gpu,
        'precision': 'float16' if fp16_res else 'float32', 'num_fp16_res': fp16_res,
        'device_kind': torch.cuda.get_device_name() if cuda else 'cpu', 'torch': torch.__version__,
        'sg2ada': str(sg2ada), 'custom_ops': ops, 'placeholders': placeholders,
        'init_s': init_s, 'first_step_s': first_step_s, 'compile_s': None, 'steps': steps, 'timed_s': elapsed,
        'sec_per_kimg': elapsed / (steps * spec.batch / 1000), 'images_per_s': steps * spec.batch / elapsed,
        'g_images_per_s': spec.g_images * spec.g_iters / g_s,
        'peak_bytes': peak, 'peak_kind': 'device' if cuda else 'host RSS', 'load_avg_after': os.getloadavg()}


# --------------------------------------------------------------------------- the table

def table(records: list[dict[str, Any]]) -> str:
    """Side by side per resolution: sec/kimg, images/s, peak memory, G images/s, compile, speed-up."""
    rows = [r for r in records if r.get('mode') != 'warm']
    warm = {(r['resolution'], r['label']): r for r in records if r.get('mode') == 'warm'}
    lines = [f"{'res':>4}  {'side':30} {'batch':>11} {'sec/kimg':>9} {'img/s':>7} {'peak MiB':>9} "
             f"{'G img/s':>8} {'compile s':>9} {'ref/ours':>8}"]
    for res in sorted({r['resolution'] for r in rows}):
        group = [r for r in rows if r['resolution'] == res]
        ref = next((r for r in group if r['side'] == 'reference'), None)
        for r in sorted(group, key=lambda r: (r['side'] != 'reference', r['label'])):
            cold = warm.get((res, r['label']), {}).get('compile_s', r.get('compile_s'))
            speedup = f"{ref['sec_per_kimg'] / r['sec_per_kimg']:.2f}x" if ref and r is not ref else ''
            batch = f"{r['batch']} ({r.get('rounds', 1)}x{r['batch_gpu'] or r['batch']})"
            lines.append(
                f"{res:>4}  {r['label']:30} {batch:>11}"
                f" {r['sec_per_kimg']:9.1f} {r['images_per_s']:7.2f} {r['peak_bytes'] / 2**20:9,.0f}"
                f" {r['g_images_per_s']:8.2f} {'-' if cold is None else f'{cold:9.1f}':>9} {speedup:>8}")
    kinds = sorted({r.get('device_kind', '?') for r in rows})
    lines.append(f"devices: {', '.join(kinds)}; peak memory: "
                 f"{', '.join(sorted({r['side'] + ' ' + r['peak_kind'] for r in rows}))}")
    for r in rows:
        if r['side'] == 'reference':
            lines.append(f"reference at {r['resolution']}: custom ops {r['custom_ops']}"
                         + (f"; placeholders for {', '.join(r['placeholders'])}" if r['placeholders'] else ''))
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    for name in ('ours', 'reference'):
        p = sub.add_parser(name)
        p.add_argument('--res', type=int, required=True)
        p.add_argument('--steps', type=int, default=16)
        p.add_argument('--smoke', action='store_true', help='tiny networks (CPU check of the same code)')
        p.add_argument('--batch-gpu', type=int, default=None, help="images per round (default: cfg auto's, all)")
        p.add_argument('--out', required=True, help='JSON lines file to append the result to')
        if name == 'ours':
            p.add_argument('--precision', choices=('float32', 'bfloat16', 'float16'), required=True)
            p.add_argument('--fp32-precision', choices=('highest', 'high', 'default'), default='highest')
            p.add_argument('--warm-only', action='store_true', help='compile (fill the compile cache) only')
    p = sub.add_parser('table')
    p.add_argument('results')
    args = ap.parse_args(argv)
    if args.cmd == 'table':
        path = pathlib.Path(args.results)
        if not path.is_file():
            raise SystemExit(f'suite_train.py: error: {path}: no results')
        print(table([json.loads(line) for line in path.read_text().splitlines() if line.strip()]))
        return 0
    spec = auto_spec(args.res, args.smoke, args.batch_gpu)
    if args.cmd == 'ours':
        rec = run_ours(spec, args.precision, args.steps, args.warm_only, args.fp32_precision)
    else:
        sg2ada = os.environ.get('SG2ADA')
        if not sg2ada:
            raise SystemExit('suite_train.py: error: set SG2ADA to a stylegan2-ada-pytorch checkout')
        rec = run_reference(spec, args.steps, sg2ada)
    rec['spec'] = dataclasses.asdict(spec)
    rec['tensorflow_imported'] = 'tensorflow' in sys.modules  # the GPU machine has none
    with open(args.out, 'a') as f:
        f.write(json.dumps(rec) + '\n')
    print(f"[suite] {rec['label']} at {spec.res}: {rec.get('sec_per_kimg', float('nan')):.1f} sec/kimg", flush=True)
    return 0


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    sys.exit(main())
