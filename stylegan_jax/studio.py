"""The browser studio for one checkpoint (Gradio; `pip install stylegan-jax[studio]`).

Three tabs, each a plain function of the generator below (tested without a browser) wired to
Gradio components in `build_app`:
  Seeds    a grid of consecutive seeds with a truncation slider; download the grid PNG and the
           latents of every seed shown (`seeds_w.npz`, one w per seed, in order).
  Mix      face A and face B by seed; the mix takes A's latents with the coarse (4-8 px layers:
           pose, face shape), middle (16-32: features, hair style) and/or fine (64 px and up:
           colours, texture) styles of B (the StyleGAN paper's groups); download the mix and its
           latent.
  Project  upload a portrait and project it (stylegan_jax.projector with the distance the
           studio was started with); download the result and `projected_w.npz`.
Everything runs on the machine that serves the page; nothing is sent anywhere (no share links,
no analytics, local fonts).
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Sequence

import numpy as np

from stylegan_jax.cli_errors import CLIError

STYLE_GROUPS = ('coarse', 'middle', 'fine')
MAX_GRID = 64
DISPLAY_CELL = 192  # small networks' images are enlarged (nearest neighbour) on the page; downloads stay native


class StudioError(CLIError, ValueError):
    """Bad studio input (shown in the page as an error message)."""


def style_layers(num_ws: int, group: str) -> list[int]:
    """ws rows of a style group, the StyleGAN paper's split: coarse rows 0-3 (the 4-8 px blocks),
    middle 4-7 (16-32 px), fine 8 onwards (64 px and up; a 32x32 network has none)."""
    bounds = {'coarse': (0, 4), 'middle': (4, 8), 'fine': (8, num_ws)}
    if group not in bounds:
        raise StudioError(f'unknown style group {group!r} (choose from {", ".join(STYLE_GROUPS)})')
    lo, hi = bounds[group]
    return list(range(min(lo, num_ws), min(hi, num_ws)))


def enlarge(image: np.ndarray, cell: int, min_side: int = DISPLAY_CELL) -> np.ndarray:
    """Nearest-neighbour enlargement by the integer factor that makes a `cell`-px image at least `min_side`."""
    f = max(1, -(-min_side // cell))
    return np.repeat(np.repeat(image, f, axis=0), f, axis=1) if f > 1 else image


class Studio:
    """The generator side of the app: seeds -> grid, mixes, projection; keeps the last latents for download."""

    def __init__(self, sampler: Any, distance: Any = None, workdir: str | None = None) -> None:
        from stylegan_jax.perceptual import distance as distances

        self.sampler = sampler
        self.distance = distance or distances.pixel()
        self.workdir = workdir or tempfile.mkdtemp(prefix='stylegan-studio-')

    def _path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def ws(self, seeds: Sequence[int], psi: float) -> np.ndarray:
        from stylegan_jax.sample import z_from_seeds

        return self.sampler.ws_from_z(z_from_seeds([int(s) for s in seeds], self.sampler.z_dim), float(psi))

    def seed_grid(self, first_seed: int, count: int, psi: float, noise_mode: str = 'const'
                  ) -> tuple[np.ndarray, str, str]:
        """(grid image, grid PNG path, latents .npz path) for seeds first_seed .. first_seed + count - 1."""
        from stylegan_jax import latents
        from stylegan_jax.sample import image_grid, save_png

        first, count = int(first_seed), int(count)
        if first < 0 or not 1 <= count <= MAX_GRID:
            raise StudioError(f'seeds must be >= 0 and the grid 1..{MAX_GRID} images')
        seeds = list(range(first, first + count))
        ws = self.ws(seeds, psi)
        grid = image_grid(self.sampler.images_from_ws(ws, noise_mode), pad=2)
        png, npz = self._path(f'seeds{first}-{first + count - 1}.png'), self._path('seeds_w.npz')
        save_png(png, grid)
        latents.save(npz, ws, meta={'seeds': seeds, 'trunc': float(psi)})
        return enlarge(grid, self.sampler.resolution), png, npz

    def mix(self, seed_a: int, seed_b: int, groups: Sequence[str], psi: float, noise_mode: str = 'const'
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
        """(A, B, mix, mix PNG path, mix latent .npz path): A's latents with B's styles in `groups`."""
        from stylegan_jax import latents
        from stylegan_jax.sample import save_png

        ws = self.ws([int(seed_a), int(seed_b)], psi)
        mixed = ws[0].copy()
        rows = sorted({r for g in groups for r in style_layers(self.sampler.num_ws, g)})
        mixed[rows] = ws[1][rows]
        a, b, m = self.sampler.images_from_ws(np.stack([ws[0], ws[1], mixed]), noise_mode)
        png, npz = self._path(f'mix_{int(seed_a)}_{int(seed_b)}.png'), self._path('mix_w.npz')
        save_png(png, m)
        latents.save(npz, mixed[None], meta={'seed_a': int(seed_a), 'seed_b': int(seed_b), 'styles_from_b': list(groups),
                                             'trunc': float(psi)})
        r = self.sampler.resolution
        return enlarge(a, r), enlarge(b, r), enlarge(m, r), png, npz

    def project(self, image: np.ndarray | None, steps: int, progress: Any = None) -> tuple[np.ndarray, str, str, str]:
        """(projection, PNG path, projected_w.npz path, a one-line report) for an uploaded image."""
        from PIL import Image

        from stylegan_jax import latents, projector
        from stylegan_jax.sample import save_png

        if image is None:
            raise StudioError('upload a target image first')
        src = self._path('upload.png')
        Image.fromarray(np.asarray(image, np.uint8)).save(src)
        cfg = self.sampler.cfg
        target = projector.load_target(src, cfg.img_resolution, cfg.img_channels)
        result = projector.project(self.sampler, target, self.distance, int(steps), progress=False)
        final = self.sampler.with_noise(result.noise)
        proj = final.images_from_ws(result.ws[None])[0]
        png, npz = self._path('proj.png'), self._path('projected_w.npz')
        save_png(png, proj)
        latents.save(npz, result.ws[None], result.noise, {'distance': result.distance, 'steps': int(steps)})
        return enlarge(proj, cfg.img_resolution), png, npz, (f'{int(steps)} steps, distance {result.distance}, '
                                f'PSNR {projector.psnr(proj, target):.1f} dB vs the cropped target')


def build_app(studio: Studio, title: str = 'stylegan-jax studio') -> Any:
    """The Gradio Blocks app for a Studio (launch it with `launch`)."""
    import gradio as gr

    s = studio.sampler
    res = s.resolution

    def guard(fn):
        def run(*args):
            try:
                return fn(*args)
            except CLIError as e:
                raise gr.Error(str(e)) from None
        return run

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f'## {title}\n`{studio.sampler.info.get("source") or ""}` - {res}x{res}, '
                    f'{s.num_ws} style layers; projection distance: {studio.distance.name}')
        with gr.Tab('Seeds'):
            with gr.Row():
                first = gr.Number(value=0, precision=0, label='first seed', elem_id='first-seed')
                count = gr.Slider(1, MAX_GRID, value=8, step=1, label='images', elem_id='grid-count')
                psi = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label='truncation psi', elem_id='trunc')
            go = gr.Button('Generate', variant='primary', elem_id='generate')
            grid = gr.Image(label='seeds', type='numpy', interactive=False, elem_id='grid')
            with gr.Row():
                grid_png = gr.File(label='grid PNG', elem_id='grid-png')
                grid_w = gr.File(label='latents (seeds_w.npz)', elem_id='grid-w')
            inputs = [first, count, psi]
            go.click(guard(studio.seed_grid), inputs, [grid, grid_png, grid_w])
            psi.release(guard(studio.seed_grid), inputs, [grid, grid_png, grid_w])
        with gr.Tab('Mix'):
            with gr.Row():
                seed_a = gr.Number(value=1, precision=0, label='face A (seed)', elem_id='seed-a')
                seed_b = gr.Number(value=2, precision=0, label='face B (seed)', elem_id='seed-b')
                groups = gr.CheckboxGroup(list(STYLE_GROUPS), value=['coarse'], label="B's styles",
                                          elem_id='groups')
                mix_psi = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label='truncation psi', elem_id='mix-trunc')
            mix_go = gr.Button('Mix', variant='primary', elem_id='mix')
            with gr.Row():
                img_a = gr.Image(label='A', type='numpy', interactive=False, elem_id='img-a')
                img_b = gr.Image(label='B', type='numpy', interactive=False, elem_id='img-b')
                img_m = gr.Image(label='mix', type='numpy', interactive=False, elem_id='img-mix')
            with gr.Row():
                mix_png = gr.File(label='mix PNG', elem_id='mix-png')
                mix_w = gr.File(label='mix latent', elem_id='mix-w')
            mix_go.click(guard(studio.mix), [seed_a, seed_b, groups, mix_psi], [img_a, img_b, img_m, mix_png, mix_w])
        with gr.Tab('Project'):
            with gr.Row():
                upload = gr.Image(label='target portrait', type='numpy', elem_id='target')
                proj = gr.Image(label='projection', type='numpy', interactive=False, elem_id='proj')
            steps = gr.Slider(10, 1000, value=300, step=10, label='steps', elem_id='steps')
            proj_go = gr.Button('Project', variant='primary', elem_id='project')
            report = gr.Markdown(elem_id='proj-report')
            with gr.Row():
                proj_png = gr.File(label='projection PNG', elem_id='proj-png')
                proj_w = gr.File(label='projected_w.npz', elem_id='proj-w')
            proj_go.click(guard(studio.project), [upload, steps], [proj, proj_png, proj_w, report])
        app.load(guard(studio.seed_grid), inputs, [grid, grid_png, grid_w])
    return app


def launch(app: Any, port: int, host: str = '127.0.0.1', block: bool = True) -> Any:
    """Serve on host:port (local only by default); no share link, no server-side rendering."""
    import gradio as gr

    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    theme = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                              font_mono=['ui-monospace', 'monospace'])
    return app.launch(server_name=host, server_port=int(port), share=False, inbrowser=False, ssr_mode=False,
                      prevent_thread_lock=not block, quiet=True, theme=theme, allowed_paths=[tempfile.gettempdir()])
