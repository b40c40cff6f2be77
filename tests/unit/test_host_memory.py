"""On the CPU the runner keeps freed memory for reuse: a big tensor allocated again after
one was freed costs no new page faults (glibc would otherwise map and zero it afresh)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from musepose_runner.pipeline.host_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # glibc settles the heap's layout over the first two
    big = torch.ones(64 * 1024 * 1024)  # 256 MB, touched
    del big
before = faults()
big = torch.ones(64 * 1024 * 1024)
print(faults() - before)
"""
PAGES = 256 * 1024 * 1024 // 4096


def _faults_of_second_allocation(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_freed_big_tensor_is_reused_without_page_faults() -> None:
    assert _faults_of_second_allocation("default") > PAGES // 2  # the check can see it
    assert _faults_of_second_allocation("keep") < PAGES // 20
