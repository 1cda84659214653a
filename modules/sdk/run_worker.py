"""`python -I -S run_worker.py CONFIG_JSON`: the worker process the server starts for a module."""

import importlib
import sys

if __name__ == "__main__":
    sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
    sys.exit(importlib.import_module("toolkiln_module._sandbox.boot").main())
