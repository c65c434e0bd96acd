"""rosinality/stylegan2-pytorch checkpoints (`.pt`) -> TorchStyleNetworks (StyleGAN2-ADA names).

Two layouts are common: the one `train.py` saves (g, d, g_ema, optimisers, argparse `args`,
ada_aug_p) and the one `convert_weight.py` writes (g_ema, latent_avg, optional g and d). Every size
is inferred from tensor shapes. The renaming follows the correspondence that was checked
numerically against stylegan2-ada-pytorch: no flips and no bias offsets are needed.
"""
from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from stylegan_jax.convert import unpickle
from stylegan_jax.convert.common import ConversionError, StateDict, TorchStyleNetworks


def is_rosinality_checkpoint(obj: Any) -> bool:
    """True for a dict holding a rosinality generator state dict under 'g_ema'."""
    return isinstance(obj, dict) and isinstance(obj.get('g_ema'), dict) and 'input.input' in obj['g_ema']


def _take(sd: StateDict, key: str, used: set[str], what: str) -> np.ndarray:
    if key not in sd:
        raise ConversionError(f'{what}: missing tensor {key!r}')
    used.add(key)
    return np.array(sd[key], dtype=np.float32)


def _check_all_used(sd: StateDict, used: set[str], what: str) -> None:
    # Blur kernels are constant buffers of the [1,3,3,1] filter; anything else unused is an error.
    left = sorted(k for k in sd if k not in used and not k.endswith(('blur.kernel', 'upsample.kernel',
                                                                      '.0.kernel')))
    if left:
        raise ConversionError(f'{what}: unexpected tensor {left[0]!r}' + (f' (and {len(left) - 1} more)'
                                                                          if len(left) > 1 else ''))


def _fit_channel_table(table: dict[int, int], what: str) -> tuple[int, int]:
    """(channel_base, channel_max) with min(base // r, max) == table[r] for every resolution r."""
    cmax = max(table.values())
    below = [r * c for r, c in table.items() if c < cmax]
    base = min(below) if below else cmax * max(table)
    if any(min(base // r, cmax) != c for r, c in table.items()):
        raise ConversionError(f'{what}: channel counts {dict(sorted(table.items()))} cannot be expressed as '
                              f'min(channel_base // res, channel_max)')
    return base, cmax


def generator_to_ada(sd: StateDict, what: str = 'g_ema') -> tuple[StateDict, dict[str, Any]]:
    """rosinality Generator state dict -> (ADA state dict, ADA Generator kwargs)."""
    used: set[str] = set()
    out: StateDict = {}
    n_mlp = 0
    while f'style.{n_mlp + 1}.weight' in sd:
        n_mlp += 1
    if n_mlp == 0:
        raise ConversionError(f'{what}: missing tensor \'style.1.weight\'')
    style_dim = int(sd['style.1.weight'].shape[1])
    for i in range(n_mlp):
        out[f'mapping.fc{i}.weight'] = _take(sd, f'style.{i + 1}.weight', used, what)
        out[f'mapping.fc{i}.bias'] = _take(sd, f'style.{i + 1}.bias', used, what)
    n_rgb = 0
    while f'to_rgbs.{n_rgb}.conv.weight' in sd:
        n_rgb += 1
    size = 4 * 2 ** n_rgb

    def styled(src: str, dst: str, noise_idx: int) -> None:
        out[f'{dst}.weight'] = _take(sd, f'{src}.conv.weight', used, what)[0]
        out[f'{dst}.affine.weight'] = _take(sd, f'{src}.conv.modulation.weight', used, what)
        out[f'{dst}.affine.bias'] = _take(sd, f'{src}.conv.modulation.bias', used, what)
        out[f'{dst}.noise_strength'] = _take(sd, f'{src}.noise.weight', used, what).reshape(())
        out[f'{dst}.bias'] = _take(sd, f'{src}.activate.bias', used, what)
        out[f'{dst}.noise_const'] = _take(sd, f'noises.noise_{noise_idx}', used, what)[0, 0]

    def torgb(src: str, dst: str) -> None:
        out[f'{dst}.weight'] = _take(sd, f'{src}.conv.weight', used, what)[0]
        out[f'{dst}.affine.weight'] = _take(sd, f'{src}.conv.modulation.weight', used, what)
        out[f'{dst}.affine.bias'] = _take(sd, f'{src}.conv.modulation.bias', used, what)
        out[f'{dst}.bias'] = _take(sd, f'{src}.bias', used, what).reshape(-1)

    out['synthesis.b4.const'] = _take(sd, 'input.input', used, what)[0]
    styled('conv1', 'synthesis.b4.conv1', 0)
    torgb('to_rgb1', 'synthesis.b4.torgb')
    table = {4: int(out['synthesis.b4.const'].shape[0])}
    for j in range(n_rgb):
        r = 2 ** (j + 3)
        styled(f'convs.{2 * j}', f'synthesis.b{r}.conv0', 2 * j + 1)
        styled(f'convs.{2 * j + 1}', f'synthesis.b{r}.conv1', 2 * j + 2)
        torgb(f'to_rgbs.{j}', f'synthesis.b{r}.torgb')
        table[r] = int(out[f'synthesis.b{r}.conv1.weight'].shape[0])
    _check_all_used(sd, used, what)
    base, cmax = _fit_channel_table(table, what)
    kwargs = dict(z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=size,
                  img_channels=int(out['synthesis.b4.torgb.weight'].shape[0]),
                  mapping_kwargs=dict(num_layers=n_mlp),
                  synthesis_kwargs=dict(channel_base=base, channel_max=cmax, num_fp16_res=0, conv_clamp=None))
    return out, kwargs


def discriminator_to_ada(sd: StateDict, what: str = 'd') -> tuple[StateDict, dict[str, Any]]:
    """rosinality Discriminator state dict -> (ADA state dict, ADA Discriminator kwargs)."""
    used: set[str] = set()
    out: StateDict = {}
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r'convs\.(\d+)\.conv1\.', k))})
    size = 4 * 2 ** len(blocks)
    out[f'b{size}.fromrgb.weight'] = _take(sd, 'convs.0.0.weight', used, what)
    out[f'b{size}.fromrgb.bias'] = _take(sd, 'convs.0.1.bias', used, what)
    table = {}
    for i in blocks:
        r = size // 2 ** (i - 1)
        out[f'b{r}.conv0.weight'] = _take(sd, f'convs.{i}.conv1.0.weight', used, what)
        out[f'b{r}.conv0.bias'] = _take(sd, f'convs.{i}.conv1.1.bias', used, what)
        out[f'b{r}.conv1.weight'] = _take(sd, f'convs.{i}.conv2.1.weight', used, what)
        out[f'b{r}.conv1.bias'] = _take(sd, f'convs.{i}.conv2.2.bias', used, what)
        out[f'b{r}.skip.weight'] = _take(sd, f'convs.{i}.skip.1.weight', used, what)
        table[r] = int(out[f'b{r}.conv0.weight'].shape[0])
    out['b4.conv.weight'] = _take(sd, 'final_conv.0.weight', used, what)
    out['b4.conv.bias'] = _take(sd, 'final_conv.1.bias', used, what)
    out['b4.fc.weight'] = _take(sd, 'final_linear.0.weight', used, what)
    out['b4.fc.bias'] = _take(sd, 'final_linear.0.bias', used, what)
    out['b4.out.weight'] = _take(sd, 'final_linear.1.weight', used, what)
    out['b4.out.bias'] = _take(sd, 'final_linear.1.bias', used, what)
    table[4] = int(out['b4.conv.weight'].shape[0])
    _check_all_used(sd, used, what)
    base, cmax = _fit_channel_table(table, what)
    kwargs = dict(c_dim=0, img_resolution=size, img_channels=int(out[f'b{size}.fromrgb.weight'].shape[1]),
                  channel_base=base, channel_max=cmax, num_fp16_res=0, conv_clamp=None,
                  epilogue_kwargs=dict(mbstd_group_size=4, mbstd_num_channels=1))
    return out, kwargs


def convert_rosinality_checkpoint(data: dict) -> TorchStyleNetworks:
    """Unpickled rosinality checkpoint dict -> TorchStyleNetworks."""
    g_ema, g_kwargs = generator_to_ada(data['g_ema'], 'g_ema')
    layout = 'train.py' if 'args' in data else 'convert_weight.py' if 'latent_avg' in data else 'g_ema only'
    nets = TorchStyleNetworks(G_ema=g_ema, G_kwargs=g_kwargs,
                              source_format=f'rosinality stylegan2-pytorch ({layout} layout)')
    if 'latent_avg' in data:
        nets.G_ema['mapping.w_avg'] = np.array(data['latent_avg'], np.float32).reshape(-1)
        nets.notes.append('w_avg taken from latent_avg')
    if isinstance(data.get('g'), dict):
        nets.G, _ = generator_to_ada(data['g'], 'g')
    if isinstance(data.get('d'), dict):
        nets.D, nets.D_kwargs = discriminator_to_ada(data['d'], 'd')
    if 'ada_aug_p' in data:
        nets.extra['ada_p'] = float(data['ada_aug_p'])
    args = data.get('args')
    if isinstance(args, unpickle.NamespaceRecord):
        nets.extra['train_args'] = {k: v for k, v in args.as_dict().items()
                                    if isinstance(v, (int, float, str, bool, type(None)))}
    return nets


def load_rosinality(path: str | os.PathLike) -> TorchStyleNetworks:
    """Read a rosinality checkpoint as data only."""
    data = unpickle.load_torch(path, unpickle.ROSINALITY_GLOBALS)
    if not is_rosinality_checkpoint(data):
        raise ConversionError(f'{path}: not a rosinality stylegan2-pytorch checkpoint (no g_ema generator)')
    return convert_rosinality_checkpoint(data)
