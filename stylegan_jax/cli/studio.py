"""`stylegan-studio --checkpoint CKPT --port P`: the browser studio (needs the [studio] extra: Gradio).

Serves on http://127.0.0.1:P (local only; --host 0.0.0.0 to share on your network). Tabs: a seed
grid with a truncation slider, style mixing of two faces (coarse / middle / fine), projection of
an uploaded portrait; every picture and latent can be downloaded. --vgg16 / --inception-weights
choose the projection distance as in `stylegan-project`.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from stylegan_jax import cli_errors
from stylegan_jax.cli.common import add_checkpoint_args, load_sampler


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='stylegan-studio', description=__doc__.split('\n\n')[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_args(p)
    p.add_argument('--port', type=int, default=7860, help='port (default 7860)')
    p.add_argument('--host', default='127.0.0.1', help='address to serve on (default 127.0.0.1: this machine only)')
    p.add_argument('--vgg16', metavar='FILE', default=None, help="the reference's vgg16.pt (projection distance)")
    p.add_argument('--inception-weights', metavar='FILE', default=None, help='FID Inception weights (distance)')
    return p


@cli_errors.command('stylegan-studio')
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `stylegan-studio` (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise cli_errors.CLIError('the studio needs Gradio: pip install "stylegan-jax[studio]"') from None
    from stylegan_jax import compile_cache, studio
    from stylegan_jax.perceptual import distance

    compile_cache.enable()
    sampler = load_sampler(args)
    app = studio.build_app(studio.Studio(sampler, distance.choose(args.vgg16, args.inception_weights)))
    print(f'stylegan-studio: serving {args.checkpoint} on http://{args.host}:{args.port} (Ctrl-C stops)', flush=True)
    studio.launch(app, args.port, args.host, block=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
