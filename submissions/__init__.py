"""Reference submissions, one folder each: `submission.py`, `search_space.json`, `README.md`.

Folders are loaded by path (`harness.submission.load_submission`), not imported as packages.
"""

__all__: list[str] = []
