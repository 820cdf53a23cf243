"""Start the vmv-sync server (contract section 1): `python server.py [--host --port --db ...]`."""

import sys

from vmv_sync.cli import main

if __name__ == "__main__":
    main(["serve", *sys.argv[1:]])
