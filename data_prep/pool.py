"""Worker processes for per-file work that know which file each worker holds.

``multiprocessing.Pool`` hangs for ever when a worker dies (the kernel's OOM killer on a huge image,
a segfault in a decoder): the task is never answered. Here each worker gets one item at a time, so
when a worker process dies the parent knows the item it was working on, yields it as
:class:`WorkerDied` (the stage makes that a record) and starts a fresh worker for the rest.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator


@dataclasses.dataclass
class WorkerDied:
    """The worker processing an item exited without answering (``exitcode`` < 0: killed by that signal)."""
    exitcode: int | None

    def reason(self) -> str:
        """Human-readable cause, e.g. 'worker killed by SIGKILL (out of memory?)'."""
        if self.exitcode is not None and self.exitcode < 0:
            try:
                name = signal.Signals(-self.exitcode).name
            except ValueError:
                name = f'signal {-self.exitcode}'
            hint = ' (out of memory?)' if name == 'SIGKILL' else ''
            return f'worker killed by {name}{hint}'
        return f'worker exited with code {self.exitcode}'


class WorkerError(RuntimeError):
    """An exception raised by the work function inside a worker (a bug: re-raised with its traceback)."""


def _loop(conn, fn, initializer, initargs) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)
    while True:
        task = conn.recv()
        if task is None:
            return
        idx, item = task
        try:
            conn.send((idx, True, fn(item)))
        except Exception:  # sent to the parent, which raises it: a bug must show its traceback
            conn.send((idx, False, traceback.format_exc()))


class _Worker:
    def __init__(self, ctx, fn, initializer, initargs):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_loop, args=(child, fn, initializer, initargs), daemon=True)
        self.proc.start()
        child.close()
        self.task: tuple[int, Any] | None = None

    def stop(self, hard: bool) -> None:
        if hard:
            self.proc.terminate()
        else:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def imap_unordered(fn: Callable, items: Iterable, workers: int, initializer: Callable | None = None,
                   initargs: tuple = ()) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, fn(item))`` as results arrive, computed in ``workers`` spawned processes; for an
    item whose worker died, ``(item, WorkerDied(exitcode))``. ``fn`` must be a module-level function.
    An exception raised by ``fn`` is re-raised here as :class:`WorkerError` with the worker's traceback.
    Stopping the iteration (or an error / Ctrl-C in the caller) terminates the workers."""
    ctx = multiprocessing.get_context('spawn')  # fork would copy the parent's threads (TF, tqdm) in a bad state
    it = iter(enumerate(items))
    pool: list[_Worker] = []
    hard = True
    try:
        def feed(w: _Worker) -> bool:
            try:
                w.task = next(it)
            except StopIteration:
                w.task = None
                return False
            try:
                w.conn.send(w.task)
            except OSError:  # it died idle: the loop below reports the task with its exit code
                pass
            return True

        for _ in range(max(1, int(workers))):
            w = _Worker(ctx, fn, initializer, initargs)
            pool.append(w)
            if not feed(w):
                break
        while any(w.task is not None for w in pool):
            busy = [w for w in pool if w.task is not None]
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for w in busy:
                try:
                    answered = w.conn in ready or (w.proc.sentinel in ready and w.conn.poll())
                except OSError:
                    answered = False
                if answered:
                    try:
                        idx, ok, res = w.conn.recv()
                    except (EOFError, OSError):  # died while answering
                        ok, res = None, None
                    if ok is None:
                        pass
                    elif not ok:
                        raise WorkerError(f'in a worker, on {w.task[1]!r}:\n{res}')
                    else:
                        item = w.task[1]
                        feed(w)
                        yield item, res
                        continue
                if w.proc.sentinel in ready or not w.proc.is_alive():
                    w.proc.join(5)
                    item = w.task[1]
                    died = WorkerDied(w.proc.exitcode)
                    w.conn.close()
                    pool.remove(w)
                    fresh = _Worker(ctx, fn, initializer, initargs)
                    pool.append(fresh)
                    feed(fresh)
                    yield item, died
        hard = False
    finally:
        for w in pool:
            w.stop(hard)
