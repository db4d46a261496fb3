import sys

from snnc.cli.main import main

sys.exit(main())
