"""Performance benchmark of the portal (``python -m bench`` or ``make bench``).

Not part of the test run: it starts gunicorn with production settings on a PostgreSQL
database of its own, fills it with ``manage.py seed_scale``, and measures the portal's
pages with ``wrk`` against two baselines from the same run (see docs/performance.md).
"""
