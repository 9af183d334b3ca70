import sys

from bayesdissect.cli.main import main

sys.exit(main())
