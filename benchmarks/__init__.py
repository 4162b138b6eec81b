"""Side-by-side benchmarks of zcmiddleware against plain apps and nginx.

Run ``python -m benchmarks.run --help``; see ``docs/benchmarks.md``.
"""
