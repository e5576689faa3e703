"""Smoke mode of the sidecar benchmark: it runs and prints its figures (nothing is timed here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("bench_sidecar.py")


@pytest.mark.bench
def test_benchmark_runs_in_tiny_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--iterations", "2", "--repeats", "1", "--ring", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    pattern = (
        r".+ \([\d.]+ KiB, \d+ samples\): datajax \d+ us/scrape .*"
        r" prometheus_client \d+ us/scrape .* ratio [\d.]+x"
    )
    for line in lines:
        assert re.fullmatch(pattern, line), line
    assert "435 samples" in lines[0]  # the whole real exposition was parsed
