"""`python -m stylegan_jax.assets export WORKDIR [--out DIR]` / `verify [DIR]` (see the package docstring)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from stylegan_jax import assets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m stylegan_jax.assets',
                                     description='Export / verify the shipped demo model.')
    sub = parser.add_subparsers(dest='command', required=True)
    exp = sub.add_parser('export', help='training workdir -> converted checkpoint + SHA256SUMS')
    exp.add_argument('workdir')
    exp.add_argument('--out', default=str(assets.demo_model_path()),
                     help='output directory (must not exist or be empty; default: the shipped model)')
    exp.add_argument('--note', default='', help='a line for network.json "notes"')
    ver = sub.add_parser('verify', help='check a model directory against its SHA256SUMS')
    ver.add_argument('directory', nargs='?', default=str(assets.demo_model_path()))
    args = parser.parse_args(argv)
    try:
        if args.command == 'export':
            out = assets.export_workdir(args.workdir, args.out, args.note)
            print(f'wrote {out} ({assets.verify_checksums(out)} files checksummed)')
        else:
            print(f'{args.directory}: {assets.verify_checksums(args.directory)} files match {assets.CHECKSUMS}')
    except (ValueError, OSError) as e:
        print(f'stylegan_jax.assets: error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
