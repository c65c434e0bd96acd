"""`python -m stylegan_jax.convert SRC --out DIR` (same as `stylegan-convert`)."""
import sys

from stylegan_jax.convert.cli import main

sys.exit(main())
