"""Tollgate's benchmark: `python -m tests.bench` from the repository root.

One run starts a static nginx upstream, then each target in turn (nginx
itself, a bare Starlette passthrough, Tollgate with SQLite and PostgreSQL
recording), drives it with wrk, and prints the measurements next to the
goals they are judged against. Not collected by pytest.
"""
