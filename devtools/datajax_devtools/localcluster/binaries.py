"""Where the Go-built control-plane tools live.

``make tools`` (tools/build-tools.sh) builds them once into a cache outside the repository so that
every clone on the machine, and CI's fresh checkout, reuses them. This module is the one place Python
resolves that cache, with the same ``XDG_CACHE_HOME`` rule as the shell script.
"""

from __future__ import annotations

import os
from pathlib import Path


class MissingToolError(RuntimeError):
    """A control-plane binary is not built yet; the message says how to build it."""


def tools_bin_dir() -> Path:
    """The directory of symlinks ``make tools`` maintains."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "datajax-operator" / "bin"


def find_binary(name: str) -> Path:
    """The pinned build from the cache, never whatever ``PATH`` offers: tests must run against the
    versions in tools/versions.env (a system kubectl may be years older, or a cloud SDK shim)."""
    cached = tools_bin_dir() / name
    if cached.exists() and os.access(cached, os.X_OK):
        return cached
    raise MissingToolError(f"{name} not found in {tools_bin_dir()}; run `make tools` first")
