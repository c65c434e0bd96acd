"""`stylegan-convert SRC --out DIR`: PyTorch / TensorFlow StyleGAN2 checkpoints -> our checkpoint.

Formats are detected from the file's content, not its name:
  * StyleGAN2-ADA (PyTorch) `network-snapshot-*.pkl`,
  * rosinality stylegan2-pytorch `.pt` (train.py layout and convert_weight.py layout),
  * NVlabs StyleGAN2 (TensorFlow 1) `network-snapshot-*.pkl` / `.pkl` tuples (G, D, Gs).
Everything is read through an allow-list unpickler: nothing from the file is executed.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Sequence

from stylegan_jax import cli_errors


def summary_table(converted: Any) -> str:
    """Human-readable table of what was converted."""
    from stylegan_jax.networks import param_count

    cfg = converted.cfg
    rows = [('network', 'parameters', 'resolution', 'mapping layers', 'z/w/c dims')]
    for name in ('G_ema', 'G', 'D'):
        if name in converted.variables:
            v = converted.variables[name]
            rows.append((name, f"{param_count(v['params']):,}", f'{cfg.img_resolution}x{cfg.img_resolution}',
                         str(cfg.mapping_layers) if name != 'D' else '-',
                         f'{cfg.z_dim}/{cfg.w_dim}/{cfg.c_dim}'))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='stylegan-convert', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint file (.pkl or .pt)')
    parser.add_argument('--out', required=True, help='output directory (must not exist or be empty)')
    parser.add_argument('--w-avg-samples', type=int, default=10000,
                        help='samples for w_avg when the checkpoint stores none (default 10000)')
    parser.add_argument('--seed', type=int, default=0, help='seed for the w_avg samples')
    return parser


@cli_errors.command('stylegan-convert')
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from stylegan_jax import checkpoint, compile_cache
    from stylegan_jax.convert import reader

    compile_cache.enable()
    converted = reader.convert_file(args.src, w_avg_samples=args.w_avg_samples, seed=args.seed)
    info = {'source': os.path.abspath(args.src), 'source_format': converted.source_format,
            'notes': converted.notes, 'extra': converted.extra}
    checkpoint.save_networks(args.out, converted.cfg, converted.variables, info)
    print(f'{args.src}: {converted.source_format}')
    print(summary_table(converted))
    for note in converted.notes:
        print(f'note: {note}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
