import sys

from routers.cli import main

sys.exit(main())
