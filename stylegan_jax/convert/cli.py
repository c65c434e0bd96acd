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
import sys
import zipfile
from typing import Any, Sequence

from stylegan_jax.convert import unpickle
from stylegan_jax.convert.common import ConversionError, TorchStyleNetworks


def read_any(path: str | os.PathLike) -> TorchStyleNetworks:
    """Detect the checkpoint format of `path` and map it to StyleGAN2-ADA names."""
    from stylegan_jax.convert import rosinality, sg2ada

    if not os.path.isfile(path):
        raise ConversionError(f'{path}: no such file')
    if zipfile.is_zipfile(path):
        data = unpickle.load_torch(path)
    else:
        with open(path, 'rb') as f:
            data = unpickle.load_pickle(f)
        if data == unpickle._LEGACY_MAGIC:  # old (pre-zip) torch.save stream
            data = unpickle.load_torch(path)
    if sg2ada.is_sg2ada_snapshot(data):
        return sg2ada.convert_sg2ada_snapshot(data, str(path))
    if rosinality.is_rosinality_checkpoint(data):
        return rosinality.convert_rosinality_checkpoint(data)
    if isinstance(data, tuple) and any(isinstance(x, unpickle.TFNetworkRecord) for x in data):
        from stylegan_jax.convert import tf_stylegan2
        return tf_stylegan2.convert_tf_snapshot(path)
    kind = type(data).__name__
    keys = ', '.join(sorted(map(str, data))[:6]) if isinstance(data, dict) else ''
    raise ConversionError(f'{path}: unrecognised checkpoint ({kind}{": " + keys if keys else ""}); expected a '
                          'StyleGAN2-ADA snapshot, a rosinality .pt or an NVlabs TF StyleGAN2 pickle')


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='stylegan-convert', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint file (.pkl or .pt)')
    parser.add_argument('--out', required=True, help='output directory (must not exist or be empty)')
    parser.add_argument('--w-avg-samples', type=int, default=10000,
                        help='samples for w_avg when the checkpoint stores none (default 10000)')
    parser.add_argument('--seed', type=int, default=0, help='seed for the w_avg samples')
    args = parser.parse_args(argv)
    from stylegan_jax import checkpoint
    from stylegan_jax.convert import to_flax

    try:
        nets = read_any(args.src)
        converted = to_flax.networks_from_torch_style(nets, w_avg_samples=args.w_avg_samples, seed=args.seed)
        info = {'source': os.path.abspath(args.src), 'source_format': converted.source_format,
                'notes': converted.notes, 'extra': converted.extra}
        checkpoint.save_networks(args.out, converted.cfg, converted.variables, info)
    except (ConversionError, unpickle.UnsafePickleError, unpickle.CheckpointFormatError,
            checkpoint.CheckpointError, OSError) as e:
        print(f'stylegan-convert: error: {e}', file=sys.stderr)
        return 1
    print(f'{args.src}: {converted.source_format}')
    print(summary_table(converted))
    for note in converted.notes:
        print(f'note: {note}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
