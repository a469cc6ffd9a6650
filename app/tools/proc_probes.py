"""What a process tree uses, read from /proc (psutil is not in the venv): RSS, PSS, open file
descriptors, the processes below a root grouped by role, directory sizes. Used by
app.tools.bench_soak; every probe answers 0 / None for a process that has gone."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
CHROMIUM_NAMES = ("chromium", "chrome")


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """(comm, the fields after it) of /proc/PID/stat, or None when pid has gone. fields[0] is
    field 3 (state), so field N of proc(5) is fields[N - 3]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_times(pid: int) -> tuple[float, float] | None:
    """(own, reaped children's) CPU seconds of pid: fields 14+15 (utime, stime) and 16+17 (cutime,
    cstime); None when gone."""
    if (st := _stat(pid)) is None:
        return None
    f = [int(x) for x in st[1][11:15]]
    return (f[0] + f[1]) / CLOCK_TICKS, (f[2] + f[3]) / CLOCK_TICKS


def cpu_s(pid: int) -> float:
    """CPU seconds pid has used (user + system); 0 when gone."""
    t = _cpu_times(pid)
    return 0.0 if t is None else t[0]


@dataclass(frozen=True)
class CpuSample:
    own: float          # CPU seconds the process used (utime + stime)
    reaped: float       # CPU seconds of the children it has waited for (cutime + cstime)
    group: str


def cpu_samples(groups: dict[str, list[int]]) -> dict[int, CpuSample]:
    """{pid: CpuSample} of every live process in groups (process_groups' roles)."""
    return {pid: CpuSample(*t, group) for group, pids in groups.items() for pid in pids
            if (t := _cpu_times(pid)) is not None}


def cpu_seconds_by_group(prev: dict[int, CpuSample], now: dict[int, CpuSample], root: int) -> dict[str, float]:
    """CPU seconds each group used between two samples, short-lived processes included (the recorder's
    encoders live one episode, a few seconds: sampling live processes alone never sees them twice).
    A process born since `prev` counts from zero. One that ended was reaped by its parent, whose reaped
    time grew by the child's total: that growth counts, less what the child had already shown at `prev`.
    The root's reaped children are "other" (process_groups: the policy and chromium outlive a soak)."""
    out: dict[str, float] = {}
    for pid, s in now.items():
        p = prev.get(pid)
        out[s.group] = out.get(s.group, 0.0) + s.own - (p.own if p else 0.0)
        if p is not None:
            g = "other" if pid == root else s.group
            out[g] = out.get(g, 0.0) + s.reaped - p.reaped
    for pid, p in prev.items():
        if pid not in now:
            out[p.group] = out.get(p.group, 0.0) - p.own
    return {g: max(0.0, v) for g, v in out.items()}    # a child whose parent went too is lost: never < 0


def descendants(root: int) -> dict[int, str]:
    """{pid: comm} of every live process below root."""
    parent: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            parent[int(entry)] = (st[0], int(st[1][1]))          # (comm, ppid: field 4)
    out: dict[int, str] = {}
    frontier = [root]
    while frontier:
        p = frontier.pop()
        for pid, (comm, ppid) in parent.items():
            if ppid == p and pid not in out:
                out[pid] = comm
                frontier.append(pid)
    return out


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split among their users, so a sum over processes
    (chromium's ten or so) does not count shared libraries and shared memory ten times."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def fd_kind(target: str) -> str:
    """What an open fd is, from its /proc/PID/fd link: socket, pipe, anon:eventfd (and other
    anon_inode kinds), memfd, dev, or file."""
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    if target.startswith("anon_inode:"):
        return "anon:" + target.split(":", 1)[1].strip("[]")
    if target.startswith("/memfd:"):
        return "memfd"
    return "dev" if target.startswith("/dev/") else "file"


def fds_by_kind(pids: list[int]) -> dict[str, int]:
    """Open fds of these processes counted by fd_kind: which kind a process's fd growth is."""
    out: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                kind = fd_kind(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:                 # closed meanwhile
                continue
            out[kind] = out.get(kind, 0) + 1
    return out


def process_groups(root: int, policy_pid: int | None) -> dict[str, list[int]]:
    """The processes of a soak by role: stack (root), policy (the child and anything below it),
    chromium (every chromium process), other (ffmpeg encoders, Playwright's driver, anything else)."""
    groups: dict[str, list[int]] = {"stack": [root], "policy": [], "chromium": [], "other": []}
    below = descendants(root)
    policy = {policy_pid, *descendants(policy_pid)} if policy_pid else set()
    for pid, comm in below.items():
        if pid in policy:
            groups["policy"].append(pid)
        elif any(name in comm.lower() for name in CHROMIUM_NAMES):
            groups["chromium"].append(pid)
        else:
            groups["other"].append(pid)
    return groups


def cmdline_args(pid: int) -> list[bytes] | None:
    """A process's arguments, or None when it has gone or they cannot be read now. Chromium
    rewrites its children's process title, so their cmdline is one space-separated string instead
    of NUL-separated arguments: every argument is split on whitespace (chromium's flags and
    profile paths have none)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # Empty for a zombie, and (seen once in a full suite) for a live process whose memory the
    # kernel could not read at that moment: a process always has its argv[0], so this is no answer.
    words = [word for arg in raw.split(b"\0") for word in arg.split()]
    return words or None


def chromium_profile(pids: list[int]) -> str | None:
    """The --user-data-dir chromium runs with (the harness's temporary profile)."""
    for pid in pids:
        for a in cmdline_args(pid) or []:
            if a.startswith(b"--user-data-dir="):
                return a.split(b"=", 1)[1].decode()
    return None


def chromium_role(pid: int) -> str:
    """A chromium process's role from its --type= flag ("renderer", "gpu-process", "utility",
    "zygote", ...); "browser" for the main process (no --type), "" once it has gone (or unreadable)."""
    args = cmdline_args(pid)
    if args is None:
        return ""
    for a in args:
        if a.startswith(b"--type="):
            return a.split(b"=", 1)[1].decode()
    return "browser"


def by_role(pids: list[int], probe) -> dict[str, float]:
    """probe (rss_mb, pss_mb, ...) summed over chromium processes of the same role: which of the
    browser's processes holds (or grows) the memory."""
    out: dict[str, float] = {}
    for pid in pids:
        if role := chromium_role(pid):
            out[role] = round(out.get(role, 0.0) + probe(pid), 1)
    return out


def by_process(pids: list[int], probe) -> dict[str, float]:
    """probe for each chromium process, keyed "role-pid" (utility-sub-type is not needed: the
    pid tells them apart): a target of so many MB per hour *per process* is read here, and a
    process that starts late (chromium's services) gets a series of its own instead of a step."""
    out: dict[str, float] = {}
    for pid in pids:
        if role := chromium_role(pid):
            out[f"{role}-{pid}"] = round(probe(pid), 1)
    return out


def dir_size_mb(path: str | None) -> float:
    if not path or not os.path.isdir(path):
        return 0.0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass             # a file removed while we walk
    return total / 2**20


ARENA_SPAN = 64 * 2**20      # glibc's thread arenas: heaps of at most 64 MiB, mapped 64 MiB-aligned (HEAP_MAX_SIZE)
MAPPING_KINDS = ("heap", "arenas", "anon", "files")


def mapping_kind(start: int, size: int, path: str) -> str:
    """Which allocator a mapping of /proc/PID/smaps belongs to: "heap" (glibc's main arena, brk),
    "arenas" (glibc's per-thread arenas: anonymous, 64 MiB-aligned, at most 64 MiB), "anon"
    (other anonymous memory: large numpy buffers mmapped one by one, other allocators' pools,
    thread stacks, GL buffers), "files" (libraries and mapped files)."""
    if path == "[heap]":
        return "heap"
    if path and not path.startswith("["):
        return "files"
    if not path and start % ARENA_SPAN == 0 and size <= ARENA_SPAN:
        return "arenas"
    return "anon"


def rss_mb_by_mapping(pid: int) -> dict[str, float]:
    """A process's RSS split by mapping_kind: where native growth lives (issue 19: the console's
    RSS grew while its Python heap stayed flat). {} when the process has gone."""
    out = dict.fromkeys(MAPPING_KINDS, 0.0)
    kind = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 5)
                if not head[0].endswith(":"):            # a mapping's header; its fields follow ("Rss:", ...)
                    lo, hi = (int(x, 16) for x in head[0].split("-"))
                    kind = mapping_kind(lo, hi - lo, head[5].strip() if len(head) > 5 else "")
                elif head[0] == "Rss:" and kind is not None:
                    out[kind] += int(head[1]) / 1024
    except (OSError, ValueError, IndexError):
        return {}
    return {k: round(v, 1) for k, v in out.items()}
