"""The one error convention of every stylegan command (sample, convert, metrics, project, video, studio, export).

* A user error (a missing or unreadable file, a bad value, a checkpoint we cannot read) is an
  instance of `CLIError` (every error type of the package that describes bad input derives from it)
  or an `OSError`; the command prints ONE line `PROG: error: MESSAGE` to stderr and exits 1.
* Ctrl-C prints `PROG: interrupted` and exits 130 (the shell convention, 128 + SIGINT).
* Anything else is a bug: it is not caught, so Python prints its traceback.

Use it as

    def main(argv=None) -> int:
        return cli_errors.run('stylegan-foo', lambda: _main(argv))

or decorate `main` with `@cli_errors.command('stylegan-foo')`.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable, Sequence

__all__ = ['CLIError', 'command', 'format_error', 'run']

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """Bad input from the user; the message names the file or value and the reason (one line)."""

    exit_code = EXIT_ERROR


def format_error(prog: str, error: BaseException) -> str:
    """`PROG: error: MESSAGE` on one line (newlines in the message are folded)."""
    message = ' '.join(str(error).split('\n')).strip() or type(error).__name__
    return f'{prog}: error: {message}'


def run(prog: str, main: Callable[[], int | None]) -> int:
    """Call `main()` and turn user errors and Ctrl-C into exit codes; bugs keep their traceback."""
    try:
        return int(main() or 0)
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CLIError, OSError) as e:
        print(format_error(prog, e), file=sys.stderr)
        return getattr(e, 'exit_code', EXIT_ERROR)


def command(prog: str) -> Callable[[Callable[[Sequence[str] | None], int | None]], Callable[..., int]]:
    """Decorator for `main(argv=None) -> int` functions: runs the body under `run(prog, ...)`."""
    def wrap(fn: Callable[[Sequence[str] | None], int | None]) -> Callable[..., int]:
        @functools.wraps(fn)
        def main(argv: Sequence[str] | None = None) -> int:
            return run(prog, lambda: fn(argv))
        return main
    return wrap
