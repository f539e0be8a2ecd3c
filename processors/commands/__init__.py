"""Sub-commands of `sieve`; one module each, discovered by processors.cli."""
