"""The Evolink side of the sandbox: the task API, the Files API, task timelines, callbacks, results.

Of the sandbox, its modules import only the shared core beside this folder (``sandbox/_config.py``,
``_http.py``, ``_faults.py``, ``_ledger.py``, ``_png.py``, ``_state.py``), never ``sandbox/midjourney/``.
"""
