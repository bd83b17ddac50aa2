import sys

from hwmodel.cli import main

sys.exit(main())
