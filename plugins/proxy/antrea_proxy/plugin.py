"""The AntreaProxy feature plugin.

Skeleton: it registers through the `antrea.agent.features` entry point and is loaded
when AntreaProxy is enabled, but implements no hook yet (see the project's open issues).
"""

from __future__ import annotations


class Plugin:
    feature = "AntreaProxy"
