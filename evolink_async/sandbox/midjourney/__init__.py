"""The Midjourney-proxy side of the sandbox: ``/mj/...`` routes, MJ tasks, buttons, notify hooks.

Of the sandbox, its modules import only the shared core beside this folder (``sandbox/_config.py``,
``_http.py``, ``_faults.py``, ``_ledger.py``, ``_png.py``, ``_state.py``), never ``sandbox/evolink/``.
The routes are served by the same server as Evolink's task API (``sandbox/_sandbox.py`` adds them).
"""
