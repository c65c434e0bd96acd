"""Train StyleGAN2(-ADA) in JAX: `python run_train.py --config configs/demo.py --workdir DIR [--config.key=value]`.

The config files (configs/*.py; configs/default.py is the schema with every default) document every
setting; any of them can be overridden on the command line, e.g. `--config.train.total_kimg=100
--config.data.path=/data/portraits`. Rerunning with the same --workdir resumes from its latest
snapshot. Errors are one line, `run_train.py: error: ...` (exit 1; 2 for a missing required
setting); Ctrl-C exits 130.
"""
import os
import sys

# Quiet TensorFlow (used only to read TFDS datasets) before anything imports it.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from stylegan_jax import cli_errors  # noqa: E402

PROG = 'run_train.py'
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training configuration file (configs/NAME.py).', lock_config=True)
flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, samples, TensorBoard events (resumes if present).')
flags.DEFINE_bool('distributed', False, 'Multi-process (multi-host) run: call jax.distributed.initialize() first. '
                  'On TPU pods and SLURM it finds its peers itself; elsewhere pass the three flags below.')
flags.DEFINE_string('coordinator_address', None, 'With --distributed: HOST:PORT of process 0.')
flags.DEFINE_integer('num_processes', None, 'With --distributed: how many processes take part.')
flags.DEFINE_integer('process_id', None, 'With --distributed: this process\'s index, 0 .. num_processes - 1.')
flags.mark_flags_as_required(['config', 'workdir'])


class UsageError(cli_errors.CLIError):
    """A missing required setting or a stray argument (exit 2, as for a bad flag)."""

    exit_code = 2


def _train(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint operation at INFO
    # Config files mark paths they need as placeholders (None); say so before any slow start-up.
    for section, key in (('data', 'path'), ('transfer', 'path')):
        if section in FLAGS.config and FLAGS.config[section].get(key, '') is None:
            raise UsageError(f'{config_flags.get_config_filename(FLAGS["config"])}: config.{section}.{key} is '
                             f'required; pass --config.{section}.{key}=PATH')
    from stylegan_jax import compile_cache
    from stylegan_jax.train import loop
    compile_cache.enable()  # XLA:CPU flags (before JAX's first computation); a rerun skips compilation
    if FLAGS.distributed:
        import jax
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    elif FLAGS.coordinator_address or FLAGS.num_processes is not None or FLAGS.process_id is not None:
        raise UsageError('--coordinator_address/--num_processes/--process_id need --distributed')
    try:
        loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except ValueError as e:  # the input pipeline's one-line data errors
        if isinstance(e, cli_errors.CLIError):
            raise
        raise loop.TrainingError(str(e)) from None
    except KeyboardInterrupt:
        print(f'{PROG}: rerun the same command to resume from the last snapshot', file=sys.stderr)
        raise
    return 0


def main(argv: list[str]) -> int:
    return cli_errors.run(PROG, lambda: _train(argv))


if __name__ == '__main__':
    app.run(main)
