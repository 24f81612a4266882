"""Peak memory of the current process, for the benchmarks' child processes (Linux).

VmHWM is the peak resident set; writing "5" to /proc/self/clear_refs resets it to the current
resident set, so that a measurement starts from a known baseline.
"""

from __future__ import annotations


def status() -> dict[str, int]:
    """{'VmHWM': bytes, 'VmRSS': bytes} from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def reset_peak() -> bool:
    """Reset VmHWM to the current VmRSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
