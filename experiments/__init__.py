"""Build, train, track and compare: the Python behind ``runner.py``.

See ``docs/architecture.md`` for the subpackages and the one-way
data path: ``runner.py`` -> ``cli`` -> ``job`` -> ``training`` / ``tracking`` /
``models`` / ``data`` -> ``layers``; ``sweeps`` and ``analysis`` beside the job.
"""
