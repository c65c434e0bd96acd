"""`stylegan-export CKPT --format rosinality --out model.pt`: write a checkpoint other StyleGAN2 code loads.

CKPT is any checkpoint (a .pkl/.pt/TF .pkl file, a converted directory, a training workdir with
--step/--kimg). The rosinality file holds g_ema, latent_avg and, when present, g and d; it is
written without torch and `torch.load(path, weights_only=True)` reads it.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from stylegan_jax import cli_errors
from stylegan_jax.cli.common import add_checkpoint_args, snapshot_kwargs


def build_parser() -> argparse.ArgumentParser:
    from stylegan_jax.convert.export import FORMATS

    parser = argparse.ArgumentParser(prog='stylegan-export', description=__doc__.split('\n\n')[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_args(parser, flag=False)
    parser.add_argument('--format', default='rosinality', choices=FORMATS, help='output format (default rosinality)')
    parser.add_argument('--out', required=True, help='output file (e.g. model.pt)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    return parser


@cli_errors.command('stylegan-export')
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `stylegan-export` (see the module docstring)."""
    args = build_parser().parse_args(argv)
    from stylegan_jax import compile_cache
    from stylegan_jax.convert.export import export

    compile_cache.enable()
    path, notes = export(args.checkpoint, args.out, args.format, overwrite=args.overwrite, **snapshot_kwargs(args))
    for note in notes:
        print(f'note: {note}')
    print(f'wrote {path} ({args.format})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
