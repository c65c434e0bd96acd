"""data_prep.pool: results from worker processes; a worker that dies is a result for its item (never a
hang), and an exception in the work function is re-raised with the worker's traceback."""
from __future__ import annotations

import os
import signal

import pytest

from data_prep import pool


def _square(x):
    if x == 'die':
        os.kill(os.getpid(), signal.SIGKILL)   # what the kernel's OOM killer does
    if x == 'bug':
        raise ZeroDivisionError('a bug in the work function')
    return x * x


def test_results_and_a_killed_worker():
    items = list(range(10)) + ['die'] + list(range(10, 20))
    got = dict(pool.imap_unordered(_square, items, workers=2))
    assert set(got) == set(items)
    assert all(got[i] == i * i for i in range(20))
    died = got['die']
    assert isinstance(died, pool.WorkerDied) and died.exitcode == -signal.SIGKILL
    assert died.reason() == 'worker killed by SIGKILL (out of memory?)'


def test_exception_in_work_function_shows_its_traceback():
    with pytest.raises(pool.WorkerError, match='ZeroDivisionError: a bug in the work function'):
        list(pool.imap_unordered(_square, [1, 'bug', 2], workers=2))


def test_stopping_early_stops_the_workers():
    it = pool.imap_unordered(_square, range(100), workers=2)
    next(it)
    it.close()                                # the generator's finally terminates its workers
    import multiprocessing
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]
