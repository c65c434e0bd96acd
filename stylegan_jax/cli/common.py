"""Arguments every checkpoint-reading command shares: --checkpoint (any checkpoint) and --step / --kimg."""
from __future__ import annotations

import argparse
from typing import Any

CHECKPOINT_HELP = ('a StyleGAN2-ADA .pkl, rosinality .pt or TF .pkl file (converted in memory, cached by file hash), '
                   'a converted checkpoint directory, or a training workdir')


def add_checkpoint_args(parser: argparse.ArgumentParser, required: bool = True, flag: bool = True) -> None:
    """--checkpoint PATH (or a positional CKPT with flag=False), --step N, --kimg K."""
    if flag:
        parser.add_argument('--checkpoint', required=required, help=CHECKPOINT_HELP)
    else:
        parser.add_argument('checkpoint', help=CHECKPOINT_HELP)
    parser.add_argument('--step', type=int, default=None, help='training workdir: use the snapshot of this step')
    parser.add_argument('--kimg', type=float, default=None,
                        help='training workdir: use the snapshot at this kimg (+-0.5; default: the latest)')


def snapshot_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """{'step': ..., 'kimg': ...} for checkpoint.load_networks / Sampler.from_checkpoint."""
    return {'step': args.step, 'kimg': args.kimg}


def load_sampler(args: argparse.Namespace, which: str = 'G_ema') -> Any:
    """The Sampler of --checkpoint (with --step / --kimg); prints which snapshot of a workdir was used."""
    import sys

    from stylegan_jax.sample import Sampler

    sampler = Sampler.from_checkpoint(args.checkpoint, which, **snapshot_kwargs(args))
    info = sampler.info
    if info.get('step') is not None:
        kimg = info.get('kimg')
        print(f'{args.checkpoint}: snapshot step {info["step"]}' + (f' (kimg {kimg:g})' if kimg is not None else ''),
              file=sys.stderr)
    return sampler
