"""The run's JSON-lines logs: one record per line, each with the `step` it belongs to.

    WORKDIR/loss_history.jsonl   averaged scalars every log.log_every_steps (losses, ADA p, r_t, sec/kimg, memory)
    WORKDIR/metrics.jsonl        one line per evaluated snapshot: step, kimg, snapshot dir, fid (and any other metric)

On resume both are cut back to the restored step (`JsonLog.open(path, step)`): records after it were
written by the interrupted run and will be written again, so they would appear twice.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any

__all__ = ['JsonLog', 'best_step']


class JsonLog:
    """An append-only JSON-lines file (written by the primary process only) and its records in memory."""

    def __init__(self, path: pathlib.Path, records: list[dict[str, Any]], writer: bool) -> None:
        self.path, self.records, self.writer = path, records, writer

    @classmethod
    def open(cls, path: str | os.PathLike, step: int, writer: bool = True) -> 'JsonLog':
        """The records up to `step` (the restored checkpoint); later ones and a line cut off by a crash are
        dropped, and the file is rewritten without them when `writer`."""
        path = pathlib.Path(path)
        if not path.is_file():
            return cls(path, [], writer)
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        records = []
        for line in lines:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and r.get('step', 0) <= step:
                records.append(r)
        if writer and len(records) != len(lines):
            tmp = path.with_suffix('.tmp')
            tmp.write_text(''.join(json.dumps(r) + '\n' for r in records))
            os.replace(tmp, path)
        return cls(path, records, writer)

    def append(self, record: dict[str, Any]) -> None:
        """Keep `record` and, on the writer, add it to the file (flushed: a crash loses nothing logged)."""
        self.records.append(record)
        if self.writer:
            with open(self.path, 'a') as f:
                f.write(json.dumps(record) + '\n')


def best_step(records: list[dict[str, Any]], key: str = 'fid') -> int | None:
    """The step of the lowest finite `key` among the records (None without any)."""
    scored = [(r[key], r['step']) for r in records
              if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]) and 'step' in r]
    return min(scored)[1] if scored else None
