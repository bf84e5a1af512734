"""Process-tree accounting from /proc (Linux only, stdlib only).

The orchestrator makes itself a child subreaper, so every process a server starts - even one
that daemonises or outlives its parent - stays a descendant of the orchestrator and is found,
measured and stopped by PID.
"""
from __future__ import annotations

import ctypes
import os
import signal
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm may contain spaces/parens: fields after the last ')'
    rest = s[s.rfind(")") + 2:].split()
    return rest  # rest[0] = state (field 3), rest[1] = ppid (field 4), ...


def descendants(root: int) -> list[int]:
    """All live descendants of `root` (not root itself)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _stat(int(name))
        if st is None or st[0] == "Z":
            continue
        children.setdefault(int(st[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime (+ reaped children's cutime+cstime) summed over pids, in seconds."""
    ticks = 0
    for pid in pids:
        st = _stat(pid)
        if st is None:
            continue
        # fields 14..17 (utime, stime, cutime, cstime) -> rest[11..14]
        ticks += sum(int(v) for v in st[11:15])
    return ticks / CLK_TCK


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS MB, PSS MB) summed over pids from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024.0, pss / 1024.0


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def reap() -> None:
    """Collect exited children (orphans handed to us as subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(pgid: int | None, pids: list[int], grace_s: float = 5.0) -> None:
    """SIGTERM the process group and each listed pid, wait, then SIGKILL what is left."""
    def send(sig):
        if pgid:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for p in pids:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass

    send(signal.SIGTERM)
    deadline = time.time() + grace_s
    while time.time() < deadline:
        reap()
        if not [p for p in pids if _alive(p)]:
            break
        time.sleep(0.1)
    send(signal.SIGKILL)
    time.sleep(0.2)
    reap()


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"
