"""Category configs: loading, ``--set`` overrides, validation against each stage's DEFAULTS, naming.

A config file is a Python file whose ``get_config()`` returns a dict / ``ml_collections.ConfigDict``
(or a ``.json`` file) with the top-level keys in ``TOP_KEYS``: one section per stage (holding only the
settings that differ from that stage's ``DEFAULTS``), plus ``name``, ``category``, ``sources``, ``root``.
An unknown section or key, at any depth where DEFAULTS has a dict, is an error naming the file (or
the ``--set`` argument): a typo must never silently fall back to a default.
"""
from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

# stage name -> module that does its work ('unique' is dedup run on the source images)
STAGE_MODULES = {'scrape': 'scrape', 'clean': 'clean', 'unique': 'dedup', 'faces': 'faces',
                 'dedup': 'dedup', 'build': 'build'}
STAGES = tuple(STAGE_MODULES)
TOP_KEYS = ('name', 'category', 'categories', 'root', 'sources', 'description') + STAGES


class DataPrepError(Exception):
    """Bad input, printed by the CLI as one line ``data-prep: error: FILE: reason`` (exit ``code``)."""

    def __init__(self, file: str | Path, reason: str, code: int = 1):
        super().__init__(f'{file}: {reason}')
        self.file, self.reason, self.code = str(file), reason, code


def plain(obj: Any) -> Any:
    """ConfigDict / FrozenConfigDict / nested mappings -> plain dicts and lists."""
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def load_config(path: str | Path | None) -> dict:
    """Load a config file (``.py`` with ``get_config()``, or ``.json``) as a plain dict; {} for None.

    Sections are checked here (unknown top-level keys, non-dict sections); keys inside a section are
    checked by :func:`check_config` against the stage modules."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise DataPrepError(p, 'config file not found', 2)
    if p.suffix == '.json':
        try:
            cfg = json.loads(p.read_text())
        except ValueError as e:
            raise DataPrepError(p, f'invalid JSON ({e})', 2) from None
    else:
        spec = importlib.util.spec_from_file_location(f'_data_prep_config_{abs(hash(str(p.resolve())))}', p)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:  # the user's file: any error in it is bad input, said in one line
            raise DataPrepError(p, f'config failed to load ({type(e).__name__}: {e})', 2) from None
        if not hasattr(mod, 'get_config'):
            raise DataPrepError(p, 'config file defines no get_config()', 2)
        try:
            cfg = mod.get_config()
        except Exception as e:  # as above: the user's code
            raise DataPrepError(p, f'get_config() failed ({type(e).__name__}: {e})', 2) from None
    cfg = plain(cfg)
    if not isinstance(cfg, dict):
        raise DataPrepError(p, f'config must be a dict / ConfigDict, got {type(cfg).__name__}', 2)
    unknown = set(cfg) - set(TOP_KEYS)
    if unknown:  # e.g. a misspelt section ('face' for 'faces') would otherwise be ignored
        raise DataPrepError(p, f'unknown config sections {sorted(unknown)} (known: {list(TOP_KEYS)})', 2)
    for st in STAGES:
        if cfg.get(st) is not None and not isinstance(cfg[st], dict):
            raise DataPrepError(p, f'section {st!r} must be a dict, got {type(cfg[st]).__name__}', 2)
    return cfg


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'section.key=value'`` -> (['section', 'key'], value); the value is a Python literal when it
    parses as one, else the string."""
    key, sep, raw = item.partition('=')
    if not sep or not key or any(not part for part in key.split('.')):
        raise DataPrepError(f'--set {item}', 'expected section.key=value', 2)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.split('.'), value


def apply_overrides(cfg: dict, overrides: Sequence[str]) -> dict:
    """Apply ``--set section.key[.subkey]=value`` items; the section must be a known one."""
    for item in overrides or ():
        parts, value = parse_override(item)
        if parts[0] not in TOP_KEYS:
            raise DataPrepError(f'--set {item}', f'unknown section {parts[0]!r} (known: {list(TOP_KEYS)})', 2)
        if len(parts) == 1:
            cfg[parts[0]] = value
            continue
        if parts[0] not in STAGES:
            raise DataPrepError(f'--set {item}', f'{parts[0]!r} is not a section with keys', 2)
        node = cfg
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise DataPrepError(f'--set {item}', f'{part} is not a section', 2)
            node = nxt
        node[parts[-1]] = value
    return cfg


def stage_module(stage: str):
    """The module doing ``stage``'s work (imported lazily: a broken stage breaks only itself)."""
    if stage not in STAGE_MODULES:
        raise DataPrepError(stage, f'unknown stage (known: {list(STAGES)})', 2)
    try:
        return importlib.import_module(f'data_prep.{STAGE_MODULES[stage]}')
    except Exception as e:  # say why in one line; the other stages still work
        raise DataPrepError(f'data_prep.{STAGE_MODULES[stage]}',
                            f'stage {stage!r} is unavailable: {type(e).__name__}: {e}') from None


def stage_defaults(stage: str, module=None) -> dict:
    """``DEFAULTS`` of a stage (a module can give per-stage variants in ``STAGE_DEFAULTS``)."""
    module = module or stage_module(stage)
    return copy.deepcopy(getattr(module, 'STAGE_DEFAULTS', {}).get(stage, module.DEFAULTS))


def merge_settings(defaults: dict, user: Mapping | None, where: str) -> dict:
    """DEFAULTS deep-merged with the user's section; unknown keys at any level are an error.

    A default that is a dict is a sub-section (its keys are checked and merged one by one); any
    other default (None, numbers, lists, strings) is replaced whole."""
    out = copy.deepcopy(defaults)
    for k, v in dict(user or {}).items():
        if k not in defaults:
            raise DataPrepError(where, f'unknown config key {k!r} (known: {sorted(defaults)})', 2)
        if isinstance(defaults[k], dict):
            if not isinstance(v, Mapping):
                raise DataPrepError(where, f'{k!r} must be a dict like {defaults[k]!r}, got {v!r}', 2)
            out[k] = merge_settings(defaults[k], v, f'{where}.{k}')
        else:
            out[k] = copy.deepcopy(v)
    return out


def check_config(cfg: dict, stages: Sequence[str], where: str) -> None:
    """Validate the sections of ``stages`` present in ``cfg`` against their DEFAULTS (raises)."""
    for st in stages:
        if cfg.get(st):
            merge_settings(stage_defaults(st), cfg[st], f'{where}: {st}')


def stage_config(cfg: dict, stage: str) -> dict:
    """The section a stage runs with: its own, plus ``sources`` (scrape) or ``name`` / ``category`` /
    ``categories`` (build) from the top level when the section does not set them."""
    sc = dict(cfg.get(stage) or {})
    if stage == 'scrape' and 'sources' in cfg and 'sources' not in sc:
        sc['sources'] = cfg['sources']
    if stage == 'build':
        for k in ('name', 'category', 'categories'):
            if cfg.get(k) is not None and sc.get(k) is None:
                sc[k] = cfg[k]
    return sc


def snake_name(text: str) -> str:
    """A valid TFDS dataset name from free text ('Wonder Woman' -> 'wonder_woman')."""
    s = re.sub(r'[^a-z0-9]+', '_', str(text).lower()).strip('_')
    if not s or not s[0].isalpha():
        s = 'ds_' + s
    return s


def dataset_name(cfg: Mapping, config_path: str | Path | None = None, input_dir: str | Path | None = None) -> str:
    """The one rule for a category's name: ``name``, else ``category``, else the config file's stem,
    else the input folder's name (its parent's when it is a stage folder such as ``data/elf/dedup``)."""
    for key in ('name', 'category'):
        if cfg.get(key):
            return snake_name(cfg[key])
    if config_path is not None:
        return snake_name(Path(config_path).stem)
    if input_dir is not None:
        p = Path(input_dir).resolve()
        return snake_name(p.parent.name if p.name in STAGES and p.parent.name else p.name)
    return 'dataset'
