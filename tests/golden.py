"""Golden files: compare what the code produces with a reviewed file, or rewrite the file on request.

``DATAJAX_UPDATE_GOLDEN=1 pytest ...`` rewrites every golden file a test reaches and reports that test
as skipped, never as passed: an update run proves nothing, the diff is for a person to review, and the
next ordinary run is the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

UPDATE_GOLDEN = os.environ.get("DATAJAX_UPDATE_GOLDEN") == "1"


def check_golden(path: Path, text: str) -> None:
    """Assert ``text`` equals the golden file at ``path`` (or rewrite it and skip, in update mode)."""
    if UPDATE_GOLDEN:
        path.write_text(text, encoding="utf-8")
        pytest.skip(f"rewrote {path.name} (DATAJAX_UPDATE_GOLDEN=1): review the diff, then run the tests")
    assert path.exists(), f"missing golden file {path}; run DATAJAX_UPDATE_GOLDEN=1 pytest {path.parent}"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path} differs; if intended, regenerate with DATAJAX_UPDATE_GOLDEN=1"
    )
