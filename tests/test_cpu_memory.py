"""reuse_freed_memory: a freed large block is reused, not handed back to the kernel and faulted in again."""

import subprocess
import sys

# Touch a 64 MiB array 6 times (freed in between); print the minor page faults of the last 5.
PROGRAM = """
import resource, sys
import numpy as np
from wmpo_common.cpu_memory import reuse_freed_memory
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
np.ones(64 << 17)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    np.ones(64 << 17)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
HUGE_PAGES = 5 * 64 // 2  # 5 fresh 64 MiB blocks fault at least once per 2 MiB (transparent huge) page


def page_faults(allocator: str) -> int:
    run = subprocess.run([sys.executable, "-c", PROGRAM, allocator], capture_output=True, text=True, check=True)
    return int(run.stdout.strip())


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default = page_faults("default")
    assert default >= HUGE_PAGES  # glibc: each block is a fresh mmap, its pages faulted in anew
    # fewer faults than one fresh block's huge pages (64 MiB / 2 MiB = 32): no block was faulted in
    # anew, whether the kernel backs them with 4 KiB or 2 MiB pages (THP "always")
    assert page_faults("reuse") < 64 // 2
