"""Benchmarks: our pipeline against the raw limits of the broker and the database, measured
in the same run on the same machine. Run with `python -m bench` (or `eldercare bench`)."""
