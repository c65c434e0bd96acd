"""``data-prep``: run one data-preparation stage, or a whole category end to end.

    data-prep STAGE --input DIR --output DIR [--config FILE] [--set section.key=value ...]
    data-prep scrape --output DIR --config FILE [--probe [N]]
    data-prep all --config configs/data/NAME.py [--output ROOT] [--from STAGE] [--to STAGE]

STAGE is one of scrape, clean, unique, faces, dedup, build (``unique`` is dedup on the source images,
before faces). A config file is a Python file whose ``get_config()`` returns an
``ml_collections.ConfigDict`` or dict (see ``data_prep.config``). ``all`` writes ROOT/<stage> for each
stage, each reading the previous one's kept list. Stage modules are imported lazily, so one that fails
to import breaks only itself.

Bad input is one line ``data-prep: error: FILE: reason`` (exit 2 for usage, 1 for failures); Ctrl-C
exits 130 (SIGTERM 143) after stopping any child process, and the next run resumes. Anything else is
a bug in data_prep and shows its traceback.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Sequence

from data_prep import config as C
from data_prep.config import DataPrepError

STAGES = C.STAGES
PROG = 'data-prep'
PROBE_FILES = 3


class Interrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM: unwinds like Ctrl-C (children are stopped on the way), exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    raise Interrupted(signum)


def run_stage(stage: str, input_dir: Path | None, output_dir: Path, cfg: dict) -> dict:
    """Run ``stage`` on the config ``cfg`` (whole config: its section is picked here)."""
    from data_prep.report import run_stage as drive
    return drive(C.stage_module(stage), input_dir, output_dir, C.stage_config(cfg, stage), stage=stage)


def _check_overrides(items: Sequence[str]) -> None:
    """Each ``--set`` names a known section and, for a stage section, a key its DEFAULTS have."""
    for item in items or ():
        parts, value = C.parse_override(item)
        if parts[0] in STAGES and len(parts) > 1:
            one: dict = {}
            C.apply_overrides(one, [item])
            try:
                C.check_config(one, [parts[0]], f'--set {item}')
            except DataPrepError as e:
                raise DataPrepError(f'--set {item}', e.reason, 2) from None


def _summary_line(stage: str, summary: dict) -> str:
    keys = ('inputs', 'kept', 'rejected', 'duplicates', 'new', 'crops', 'examples', 'processed_now')
    parts = [f'{k}={summary[k]}' for k in keys if isinstance(summary.get(k), (int, float))]
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
        if st == 'scrape':
            sp.add_argument('--probe', nargs='?', type=int, const=PROBE_FILES, default=0, metavar='N',
                            help=f'only check access: fetch N (default {PROBE_FILES}) files per source '
                                 'into OUTPUT/.probe, without touching the archive')
    sp = sub.add_parser('all', help='run scrape -> clean -> unique -> faces -> dedup -> build for a category config')
    sp.add_argument('--config', '-c', required=True, help='configs/data/NAME.py')
    sp.add_argument('--output', '-o', help='output root (default: config root, else data/<name>)')
    sp.add_argument('--from', dest='first', choices=STAGES, default=STAGES[0], help='first stage to run')
    sp.add_argument('--to', dest='last', choices=STAGES, default=STAGES[-1], help='last stage to run')
    sp.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE')
    return p


def _probe(cfg: dict, out: Path, n: int) -> int:
    cfg.setdefault('scrape', {})['probe'] = n
    try:
        summary = run_stage('scrape', None, out / '.probe', cfg)
    except DataPrepError as e:
        from data_prep.report import load_records
        summary = {'sources': {}}
        print(f'{PROG}: error: {e}', file=sys.stderr)
        recs = load_records(out / '.probe') or {}
        for r in recs.values():
            if r.status == 'rejected':
                print(f'probe: FAILED {r.path}: {r.reason}')
        return e.code
    bad = 0
    for url, s in summary['sources'].items():
        if s['files']:
            print(f'probe: ok     {url}: {s["files"]} files')
        else:
            bad += 1
            print(f'probe: FAILED {url}: exit {s["exit"]}, see {out / ".probe" / s["log"]}')
    print(f'probe: {len(summary["sources"]) - bad} of {len(summary["sources"])} sources reachable '
          f'(files in {out / ".probe"})')
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``data-prep``; returns the exit code."""
    args = build_parser().parse_args(argv)  # usage errors: argparse prints one line + exits 2
    old = signal.signal(signal.SIGTERM, _on_signal)
    try:
        cfg = C.load_config(args.config)
        run_stages = (STAGES[STAGES.index(args.first): STAGES.index(args.last) + 1]
                      if args.stage == 'all' else (args.stage,))
        if not run_stages:
            raise DataPrepError(f'--from {args.first}', f'comes after --to {args.last}', 2)
        C.check_config(cfg, run_stages, str(args.config))
        _check_overrides(args.set)
        C.apply_overrides(cfg, args.set)
        if args.stage == 'all':
            name = C.dataset_name(C.stage_config(cfg, 'build'), args.config)
            root = Path(args.output or cfg.get('root') or Path('data') / name)
            cfg.setdefault('build', {}).setdefault('name', name)
            for st in run_stages:
                i = STAGES.index(st)
                inp = root / STAGES[i - 1] if i > 0 else None
                if inp is not None and not inp.is_dir():
                    raise DataPrepError(inp, f'input of {st} does not exist (run the {STAGES[i - 1]} stage first)')
                print(_summary_line(st, run_stage(st, inp, root / st, cfg)), flush=True)
            if 'build' in run_stages:
                print(f'all: dataset in {root / "build"}')
            return 0
        inp = Path(args.input) if args.input else None
        out = Path(args.output)
        if args.stage == 'scrape' and args.probe:
            return _probe(cfg, out, args.probe)
        if args.stage == 'build':
            cfg.setdefault('build', {}).setdefault('name', C.dataset_name(C.stage_config(cfg, 'build'),
                                                                          args.config, inp))
        summary = run_stage(args.stage, inp, out, cfg)
        print(_summary_line(args.stage, summary))
        print(f'{args.stage}: report in {out / "report.json"}')
        return 0
    except DataPrepError as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        return e.code
    except KeyboardInterrupt as e:
        signum = getattr(e, 'signum', signal.SIGINT)
        print(f'{PROG}: error: interrupted by {signal.Signals(signum).name} (re-run to resume)', file=sys.stderr)
        return 128 + int(signum)
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == '__main__':
    sys.exit(main())
