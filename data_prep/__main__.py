"""`python -m data_prep` = `data-prep`."""
import sys

from data_prep.cli import main

sys.exit(main())
