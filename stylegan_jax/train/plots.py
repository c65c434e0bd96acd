"""WORKDIR/loss_curves.png: the logged scalars against kimg, one panel per group (matplotlib Agg)."""
from __future__ import annotations

import os
import pathlib
from typing import Any

__all__ = ['CURVES', 'plot_loss_curves', 'save_figure']

# Panels: adversarial losses; D scores; regularisers; ADA p with r_t = E[sign(D(real))] (Loss/signs/real).
CURVES = (('Loss/G/loss', 'Loss/D/loss'), ('Loss/scores/real', 'Loss/scores/fake'),
          ('Loss/r1_penalty', 'Loss/pl_penalty'), ('Progress/augment', 'Loss/signs/real'))


def save_figure(fig: Any, path: str | os.PathLike, dpi: int) -> None:
    """Save a matplotlib figure as PNG atomically (a temporary name, then renamed) and close it."""
    import matplotlib.pyplot as plt
    path = pathlib.Path(path)
    tmp = path.with_suffix('.tmp.png')
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)


def plot_loss_curves(history: list[dict[str, Any]], path: pathlib.Path, ada_target: float | None = None) -> None:
    """Draw `history` (loss_history.jsonl records) to `path` (atomically); `ada_target` adds r_t's target line."""
    if not history:
        return
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4 * len(CURVES), 3.2))
    kimg = [h['Progress/kimg'] for h in history]
    for ax, names in zip(axes, CURVES):
        for name in names:
            pts = [(k, h[name]) for k, h in zip(kimg, history) if name in h]
            if pts:
                ax.plot(*zip(*pts), label=name.split('/', 1)[1])
        if ada_target is not None and any('Loss/signs/real' in h for h in history) and 'Loss/signs/real' in names:
            ax.axhline(ada_target, color='grey', lw=0.8, ls='--', label=f'r_t target {ada_target:g}')
        ax.set_xlabel('kimg')
        if ax.get_legend_handles_labels()[0]:  # a panel without data (e.g. no ADA) gets no empty legend
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
