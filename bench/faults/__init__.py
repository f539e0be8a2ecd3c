"""The fault-injection harness (bench/bench_faults.py, tests/faults/): see harness.py."""
