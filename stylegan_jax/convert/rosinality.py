"""rosinality/stylegan2-pytorch checkpoints (`.pt`) <-> TorchStyleNetworks (StyleGAN2-ADA names).

Two layouts are common: the one `train.py` saves (g, d, g_ema, optimisers, argparse `args`,
ada_aug_p) and the one `convert_weight.py` writes (g_ema, latent_avg, optional g and d). Every size
is inferred from tensor shapes. The renaming follows the correspondence that was checked
numerically against stylegan2-ada-pytorch: no flips and no bias offsets are needed.
`generator_from_ada` / `discriminator_from_ada` are the inverse mapping (used by `stylegan-export`):
they also write the constant blur-kernel buffers rosinality's modules hold, so a strict
`load_state_dict` accepts the result.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

import numpy as np

from stylegan_jax.convert import unpickle
from stylegan_jax.convert.common import ConversionError, StateDict, TorchStyleNetworks


NAME = 'rosinality stylegan2-pytorch'


def detect(obj: Any) -> bool:
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


# --------------------------------------------------------------------------- ADA names -> rosinality

_BLUR = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32) / 64
# rosinality's hard-coded channel table: C(r) = 512 up to 32, then 256m, 128m, ... (m = channel_multiplier)
_ROSINALITY_BASE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def _put(out: StateDict, used: set[str], key: str, sd: StateDict, src: str, lead: int = 0,
         shape: tuple[int, ...] | None = None, what: str = 'G') -> None:
    """out[key] = sd[src] with `lead` leading unit axes added (or reshaped to `shape`)."""
    if src not in sd:
        raise ConversionError(f'{what}: missing tensor {src!r}')
    used.add(src)
    value = np.asarray(sd[src], np.float32)
    value = value.reshape(shape if shape is not None else (1,) * lead + value.shape)
    out[key] = np.ascontiguousarray(value)


def generator_from_ada(sd: StateDict, cfg: Any, what: str = 'G') -> StateDict:
    """ADA Generator state dict (our flattened G variables) -> rosinality Generator state dict.

    `cfg` is the NetworkConfig; only unconditional RGB generators exist in rosinality's code.
    """
    if cfg.c_dim:
        raise ConversionError(f'{what}: conditional generators (c_dim={cfg.c_dim}) have no rosinality equivalent')
    if cfg.img_channels != 3:
        raise ConversionError(f'{what}: rosinality generators are RGB; this one has {cfg.img_channels} channels')
    if cfg.z_dim != cfg.w_dim:
        raise ConversionError(f'{what}: rosinality needs z_dim == w_dim (style_dim), got {cfg.z_dim} and {cfg.w_dim}')
    out: StateDict = {}
    used: set[str] = set()
    for i in range(cfg.mapping_layers):
        _put(out, used, f'style.{i + 1}.weight', sd, f'mapping.fc{i}.weight', what=what)
        _put(out, used, f'style.{i + 1}.bias', sd, f'mapping.fc{i}.bias', what=what)

    def styled(dst: str, src: str, noise_idx: int, up: bool) -> None:
        _put(out, used, f'{dst}.conv.weight', sd, f'{src}.weight', lead=1, what=what)
        if up:
            out[f'{dst}.conv.blur.kernel'] = _BLUR * 4  # the up-sampling gain lives in the kernel
        _put(out, used, f'{dst}.conv.modulation.weight', sd, f'{src}.affine.weight', what=what)
        _put(out, used, f'{dst}.conv.modulation.bias', sd, f'{src}.affine.bias', what=what)
        _put(out, used, f'{dst}.noise.weight', sd, f'{src}.noise_strength', shape=(1,), what=what)
        _put(out, used, f'{dst}.activate.bias', sd, f'{src}.bias', what=what)
        _put(out, used, f'noises.noise_{noise_idx}', sd, f'{src}.noise_const', lead=2, what=what)

    def torgb(dst: str, src: str, skip: bool) -> None:
        _put(out, used, f'{dst}.conv.weight', sd, f'{src}.weight', lead=1, what=what)
        _put(out, used, f'{dst}.conv.modulation.weight', sd, f'{src}.affine.weight', what=what)
        _put(out, used, f'{dst}.conv.modulation.bias', sd, f'{src}.affine.bias', what=what)
        _put(out, used, f'{dst}.bias', sd, f'{src}.bias', shape=(1, -1, 1, 1), what=what)
        if skip:
            out[f'{dst}.upsample.kernel'] = _BLUR * 4

    _put(out, used, 'input.input', sd, 'synthesis.b4.const', lead=1, what=what)
    styled('conv1', 'synthesis.b4.conv1', 0, False)
    torgb('to_rgb1', 'synthesis.b4.torgb', False)
    j, r = 0, 8
    while r <= cfg.img_resolution:
        styled(f'convs.{2 * j}', f'synthesis.b{r}.conv0', 2 * j + 1, True)
        styled(f'convs.{2 * j + 1}', f'synthesis.b{r}.conv1', 2 * j + 2, False)
        torgb(f'to_rgbs.{j}', f'synthesis.b{r}.torgb', True)
        j, r = j + 1, r * 2
    left = sorted(k for k in sd if k not in used and k != 'mapping.w_avg' and not k.endswith('resample_filter'))
    if left:
        raise ConversionError(f'{what}: tensor {left[0]!r} has no rosinality counterpart')
    return out


def discriminator_from_ada(sd: StateDict, cfg: Any, what: str = 'D') -> StateDict:
    """ADA (resnet) Discriminator state dict -> rosinality Discriminator state dict."""
    if cfg.c_dim:
        raise ConversionError(f'{what}: conditional discriminators have no rosinality equivalent')
    group = cfg.mbstd_group_size
    if (group, cfg.mbstd_num_channels) != (4, 1):
        raise ConversionError(f'{what}: rosinality fixes the minibatch-stddev group to 4 and 1 channel; this D has '
                              f'group {group}, {cfg.mbstd_num_channels} channel(s)')
    out: StateDict = {}
    used: set[str] = set()
    size = cfg.img_resolution
    _put(out, used, 'convs.0.0.weight', sd, f'b{size}.fromrgb.weight', what=what)
    _put(out, used, 'convs.0.1.bias', sd, f'b{size}.fromrgb.bias', what=what)
    i, r = 1, size
    while r > 4:
        _put(out, used, f'convs.{i}.conv1.0.weight', sd, f'b{r}.conv0.weight', what=what)
        _put(out, used, f'convs.{i}.conv1.1.bias', sd, f'b{r}.conv0.bias', what=what)
        out[f'convs.{i}.conv2.0.kernel'] = _BLUR
        _put(out, used, f'convs.{i}.conv2.1.weight', sd, f'b{r}.conv1.weight', what=what)
        _put(out, used, f'convs.{i}.conv2.2.bias', sd, f'b{r}.conv1.bias', what=what)
        out[f'convs.{i}.skip.0.kernel'] = _BLUR
        _put(out, used, f'convs.{i}.skip.1.weight', sd, f'b{r}.skip.weight', what=what)
        i, r = i + 1, r // 2
    for dst, src in (('final_conv.0.weight', 'b4.conv.weight'), ('final_conv.1.bias', 'b4.conv.bias'),
                     ('final_linear.0.weight', 'b4.fc.weight'), ('final_linear.0.bias', 'b4.fc.bias'),
                     ('final_linear.1.weight', 'b4.out.weight'), ('final_linear.1.bias', 'b4.out.bias')):
        _put(out, used, dst, sd, src, what=what)
    left = sorted(k for k in sd if k not in used and not k.endswith('resample_filter'))
    if left:
        raise ConversionError(f'{what}: tensor {left[0]!r} has no rosinality counterpart')
    return out


def channel_multiplier(cfg: Any) -> int | None:
    """The `channel_multiplier` of rosinality's Generator that gives cfg's channel counts, or None if none does."""
    for m in (1, 2, 4, 8):
        if all(cfg.channels(r) == (base * m if r >= 64 else base) for r, base in _ROSINALITY_BASE.items()
               if r <= cfg.img_resolution):
            return m
    return None


def convert(data: dict) -> TorchStyleNetworks:
    """Unpickled rosinality checkpoint dict -> TorchStyleNetworks."""
    g_ema, g_kwargs = generator_to_ada(data['g_ema'], 'g_ema')
    layout = 'train.py' if 'args' in data else 'convert_weight.py' if 'latent_avg' in data else 'g_ema only'
    nets = TorchStyleNetworks(G_ema=g_ema, G_kwargs=g_kwargs,
                              source_format=f'{NAME} ({layout} layout)')
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
    """Read a rosinality checkpoint as data only (ConversionError if it is another format)."""
    from stylegan_jax.convert import reader
    return reader.read_any(path, formats=(sys.modules[__name__],))
