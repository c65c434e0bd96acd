"""``data-prep``: run one data-preparation stage, or a whole category end to end.

    data-prep STAGE --input DIR --output DIR [--config FILE] [--set section.key=value ...]
    data-prep all --config configs/data/NAME.py [--output ROOT] [--from STAGE] [--to STAGE]

STAGE is one of scrape, clean, faces, dedup, build.  A config file is a Python file whose
``get_config()`` returns an ``ml_collections.ConfigDict`` or dict with sections ``name``, ``category``,
``sources`` ([{url, kind}]), ``root`` (default output root), ``scrape``, ``clean``, ``faces``, ``dedup``,
``build``; a stage receives its own section (plus ``sources`` for scrape and ``name``/``category`` for
build).  ``all`` writes ROOT/scrape, ROOT/clean, ROOT/faces, ROOT/dedup, ROOT/build, each stage
reading the previous one's output.  Stage modules are imported lazily, so one that fails to import
breaks only itself.  Errors are one line ``data-prep: error: ...`` (exit 2 for usage, 1 for failures).
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Sequence

STAGES = ('scrape', 'clean', 'faces', 'dedup', 'build')
PROG = 'data-prep'
TOP_KEYS = ('name', 'category', 'categories', 'root', 'sources', 'description') + STAGES


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code ``code``."""

    def __init__(self, msg: str, code: int = 1):
        super().__init__(msg)
        self.code = code


def _plain(obj: Any) -> Any:
    """ConfigDict / FrozenConfigDict / nested mappings -> plain dicts and lists."""
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def load_config(path: str | Path | None) -> dict:
    """Load a config file (``.py`` with ``get_config()``, or ``.json``) as a plain dict; {} for None."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise CliError(f'{p}: config file not found', 2)
    if p.suffix == '.json':
        try:
            cfg = json.loads(p.read_text())
        except ValueError as e:
            raise CliError(f'{p}: invalid JSON ({e})', 2) from None
    else:
        spec = importlib.util.spec_from_file_location(f'_data_prep_config_{abs(hash(str(p.resolve())))}', p)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:
            raise CliError(f'{p}: config failed to load ({type(e).__name__}: {e})', 2) from None
        if not hasattr(mod, 'get_config'):
            raise CliError(f'{p}: config file defines no get_config()', 2)
        try:
            cfg = mod.get_config()
        except Exception as e:
            raise CliError(f'{p}: get_config() failed ({type(e).__name__}: {e})', 2) from None
    cfg = _plain(cfg)
    if not isinstance(cfg, dict):
        raise CliError(f'{p}: config must be a dict / ConfigDict, got {type(cfg).__name__}', 2)
    unknown = set(cfg) - set(TOP_KEYS)
    if unknown:  # e.g. a misspelt section ('face' for 'faces') would otherwise be ignored
        raise CliError(f'{p}: unknown config sections {sorted(unknown)} (known: {list(TOP_KEYS)})', 2)
    for st in STAGES:
        if cfg.get(st) is not None and not isinstance(cfg[st], dict):
            raise CliError(f'{p}: section {st!r} must be a dict, got {type(cfg[st]).__name__}', 2)
    return cfg


def apply_overrides(cfg: dict, overrides: Sequence[str]) -> dict:
    """``section.key=value`` overrides (value parsed as a Python literal when possible, else a string)."""
    for item in overrides or ():
        key, sep, raw = item.partition('=')
        if not sep or not key:
            raise CliError(f'--set {item!r}: expected section.key=value', 2)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        node = cfg
        parts = key.split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise CliError(f'--set {item!r}: {part} is not a section', 2)
        node[parts[-1]] = value
    return cfg


def stage_config(cfg: dict, stage: str) -> dict:
    """The dict a stage's ``run`` gets: its own section, plus sources (scrape) / name, category (build)."""
    sc = dict(cfg.get(stage) or {})
    if stage == 'scrape' and 'sources' in cfg and 'sources' not in sc:
        sc['sources'] = cfg['sources']
    if stage == 'build':
        for k in ('name', 'category', 'categories'):
            if k in cfg and k not in sc:
                sc[k] = cfg[k]
    return sc


def _import_stage(stage: str):
    try:
        return importlib.import_module(f'data_prep.{stage}')
    except Exception as e:  # only this stage is broken; say why in one line
        raise CliError(f'stage {stage!r} is unavailable: {type(e).__name__}: {e}') from None


def run_stage(stage: str, input_dir: Path | None, output_dir: Path, cfg: dict) -> dict:
    """Import ``data_prep.<stage>`` and call its ``run``; bad input becomes a CliError."""
    mod = _import_stage(stage)
    try:
        return mod.run(input_dir, output_dir, stage_config(cfg, stage))
    except (FileNotFoundError, NotADirectoryError, ValueError, KeyError, PermissionError) as e:
        raise CliError(f'{stage}: {e}') from None


def _summary_line(stage: str, summary: dict) -> str:
    keys = ('inputs', 'kept', 'rejected', 'duplicates', 'duplicate', 'new', 'images', 'faces')
    parts = [f'{k}={summary[k]}' for k in keys if isinstance(summary, dict) and k in summary
             and isinstance(summary[k], (int, float))]
    return f'{stage}: ' + (' '.join(parts) if parts else 'done')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description='Scrape, clean, face-crop, deduplicate and build '
                                'a TFDS dataset of portraits (see data_prep/ and configs/data/).')
    sub = p.add_subparsers(dest='stage', metavar='STAGE')
    sub.required = True
    for st in STAGES:
        sp = sub.add_parser(st, help=f'run the {st} stage')
        sp.add_argument('--input', '-i', required=(st != 'scrape'), help='input folder (previous stage output)')
        sp.add_argument('--output', '-o', required=True, help='output folder (report.json goes here)')
        sp.add_argument('--config', '-c', help='config file (.py with get_config(), or .json)')
        sp.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                        help='override a config value, e.g. --set clean.min_side=512')
    sp = sub.add_parser('all', help='run scrape -> clean -> faces -> dedup -> build for a category config')
    sp.add_argument('--config', '-c', required=True, help='configs/data/NAME.py')
    sp.add_argument('--output', '-o', help='output root (default: config root, else data/<name>)')
    sp.add_argument('--from', dest='first', choices=STAGES, default=STAGES[0], help='first stage to run')
    sp.add_argument('--to', dest='last', choices=STAGES, default=STAGES[-1], help='last stage to run')
    sp.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``data-prep``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line + exits 2
    try:
        cfg = apply_overrides(load_config(args.config), args.set)
        if args.stage == 'all':
            name = cfg.get('name') or Path(args.config).stem
            root = Path(args.output or cfg.get('root') or Path('data') / name)
            stages = STAGES[STAGES.index(args.first): STAGES.index(args.last) + 1]
            if not stages:
                raise CliError(f'--from {args.first} comes after --to {args.last}', 2)
            for st in stages:
                i = STAGES.index(st)
                inp = root / STAGES[i - 1] if i > 0 else None
                if inp is not None and not inp.is_dir():
                    raise CliError(f'{st}: input {inp} does not exist (run the {STAGES[i - 1]} stage first)')
                summary = run_stage(st, inp, root / st, cfg)
                print(_summary_line(st, summary), flush=True)
            print(f'all: dataset in {root / "build"}')
        else:
            inp = Path(args.input) if args.input else None
            if inp is not None and not inp.is_dir():
                raise CliError(f'{inp}: input folder does not exist', 2)
            out = Path(args.output)
            if inp is not None and inp.resolve() == out.resolve():
                raise CliError(f'{out}: output folder must differ from the input folder', 2)
            summary = run_stage(args.stage, inp, out, cfg)
            print(_summary_line(args.stage, summary))
            print(f'{args.stage}: report in {out / "report.json"}')
        return 0
    except CliError as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f'{PROG}: error: interrupted (re-run to resume)', file=sys.stderr)
        return 130
    except Exception as e:  # last resort: still one line, never a traceback
        print(f'{PROG}: error: {type(e).__name__}: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
