"""Protocols: each wire protocol's calls mapped onto the unified ``Task``, behind the ``TaskAPI`` seam."""
