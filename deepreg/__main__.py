import sys

from deepreg.cli import main

sys.exit(main())
