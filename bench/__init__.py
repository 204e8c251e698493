"""layerlab's benchmarks: one script per question, each writing its section of BENCHMARKS.md.

Run one with ``python -m bench.<name> [--quick] [--out FILE]`` or all of them
with ``python -m bench.run_all [--quick]`` (``make bench``). See BENCHMARKS.md.
"""
