"""The embedded mode (``infadapter run``): the controller wired to local processes (see :mod:`infadapter.embedded.run`)."""

from infadapter.embedded.run import EmbeddedRun
from infadapter.embedded.view import RunSummary

__all__ = ["EmbeddedRun", "RunSummary"]
