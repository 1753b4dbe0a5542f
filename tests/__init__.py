"""archive-dr tests: a package, so test modules are tests.<dir>.<name> (tests/unit and tests/lab both have a test_inspect.py) and helpers import as tests.<dir>.<helper>."""
