"""Train StyleGAN2(-ADA) in JAX: `python run_train.py --config configs/demo.py --workdir DIR [--config.key=value]`.

The config files (configs/*.py) document every setting; any of them can be overridden on the command
line, e.g. `--config.train.total_kimg=100 --config.data.path=/data/portraits`. Rerunning with the same
--workdir resumes from its latest checkpoint.
"""
import os
import sys

# Quiet TensorFlow (used only by the input pipeline) before anything imports it.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training configuration file (configs/NAME.py).', lock_config=True)
flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, samples, TensorBoard events (resumes if present).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f'run_train.py: unexpected arguments: {" ".join(argv[1:])}', file=sys.stderr)
        return 2
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint operation at INFO
    # Config files mark paths they need as placeholders (None); say so before any slow start-up.
    for section, key in (('data', 'path'), ('transfer', 'path')):
        if section in FLAGS.config and FLAGS.config[section].get(key, '') is None:
            print(f'run_train.py: error: {config_flags.get_config_filename(FLAGS["config"])}: '
                  f'config.{section}.{key} is required; pass --config.{section}.{key}=PATH', file=sys.stderr)
            return 2
    from stylegan_jax.train import loop
    try:
        loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (loop.TrainingError, ValueError, OSError) as e:
        print(f'run_train.py: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('run_train.py: interrupted; rerun the same command to resume from the last checkpoint',
              file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    app.run(main)
