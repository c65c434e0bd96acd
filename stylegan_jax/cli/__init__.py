"""The stylegan commands that are not part of a package of their own: one module per command.

sample.py   `stylegan-sample`    seeds / projected latents -> PNGs, grids, style mixing
project.py  `stylegan-project`   an image -> the latent that reproduces it
video.py    `stylegan-video`     latent-walk and interpolation videos
export.py   `stylegan-export`    our checkpoints -> rosinality .pt
studio.py   `stylegan-studio`    the browser app
common.py   the --checkpoint/--step/--kimg arguments they share

`stylegan-convert` and `stylegan-metrics` live in `convert/cli.py` and `metrics/cli.py`. All of
them follow `stylegan_jax.cli_errors` (one-line errors, exit 130 on Ctrl-C).
"""
