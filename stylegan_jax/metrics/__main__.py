"""`python -m stylegan_jax.metrics` = `stylegan-metrics`."""
import sys

from stylegan_jax.metrics.cli import main

sys.exit(main())
