import sys

from kelly.cli import main

sys.exit(main())
