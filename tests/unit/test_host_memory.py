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
# The heap settles first: an aligned block freed between small allocations can be a few
# bytes short of the next request until the free blocks around it merge (up to six
# rounds were seen; the layout depends on where ASLR put things).
for _ in range(8):
    big = torch.ones(64 * 1024 * 1024)  # 256 MB, touched
    del big
before = faults()
for _ in range(4):
    big = torch.ones(64 * 1024 * 1024)
    del big
print(faults() - before)
"""
PAGES = 256 * 1024 * 1024 // 4096


def _faults_of_allocations(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_freed_big_tensor_is_reused_without_page_faults() -> None:
    # Four allocations after the heap settled: all mapped afresh by default, and with the
    # runner's setting all served from memory freed before (a few stray pages at most).
    assert _faults_of_allocations("default") > 3 * PAGES  # the check can see it
    assert _faults_of_allocations("keep") < PAGES // 20
