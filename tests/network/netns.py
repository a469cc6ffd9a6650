"""A two-machine network inside one Linux box: network namespaces joined by veth, with faults.

    link = NetLink.create()              # ewam-srv-XXXX (10.77.0.1) <-> ewam-cli-XXXX (10.77.0.2)
    ServerProcess([...,"--bind", "tcp://10.77.0.1:5555"], prefix=link.server_prefix)   # runs in srv
    with link.client_side():             # this thread, and every thread it starts, is in cli
        client = PolicyClient("tcp://10.77.0.1:5555", keys=...)
    link.impair(delay_ms=50, jitter_ms=20, loss=0.02)   # each way
    link.impair(rate_mbit=4)             # a 4 Mbit/s link each way (queued frames wait their turn)
    link.partition(); link.heal()        # `ip link set DEV down` / up on the server's side
    link.close()                         # deletes the namespaces (and so the veth pair)

Faults: by default a third namespace sits between the two and tests/network/impairer.py bridges it
in userspace (these machines' kernels have no sch_netem: "Specified qdisc kind is unknown"),
with netem's delay / jitter / loss semantics (real dropped frames that TCP must retransmit).
WAM_NET_BACKEND=netem uses the kernel's `tc qdisc ... netem` on both veth ends instead.
`link.backend` says which ("netem" or "userspace").

Namespaces need root (CAP_SYS_ADMIN): `unavailable_reason()` says why they cannot be made
here, so the fixtures skip only then. Names carry the pid and a random tag, so concurrent
runs never collide; addresses may repeat across runs because each namespace has its own stack.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

CLONE_NEWNET = 0x40000000
SERVER_IP, CLIENT_IP = "10.77.0.1", "10.77.0.2"
PORT = 5555          # the policy server's port in its namespace (namespaces have ports of their own)
HERE = Path(__file__).resolve().parent


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def _netns_exec(ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return _ip("netns", "exec", ns, *cmd, check=check)


@lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None if this process can build namespaces with veth pairs, else the reason in words."""
    if sys.platform != "linux":
        return "network namespaces are Linux-only"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (Debian: apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN); CI runs these tests as root"
    probe = f"ewam-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"the kernel refused a network namespace: {made.stderr.strip()}"
        veth = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
        if veth.returncode != 0:
            return f"the kernel refused a veth pair: {veth.stderr.strip()}"
        return None
    finally:
        _ip("netns", "del", probe, check=False)


@lru_cache(maxsize=1)
def kernel_has_netem() -> bool:
    probe = f"ewam-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
        _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        return _netns_exec(probe, "tc", "qdisc", "add", "dev", "p0", "root", "netem", "delay", "1ms",
                           check=False).returncode == 0
    finally:
        _ip("netns", "del", probe, check=False)


@contextmanager
def entered(ns: str):
    """Run this thread inside namespace `ns` (setns affects the calling thread only); threads it
    starts meanwhile stay there for good. A ZeroMQ context makes its TCP connections from its
    I/O thread, created with the context's first socket: create that socket inside the block."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    new = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(new, CLONE_NEWNET) != 0:
            raise NetnsError(f"setns into {ns} failed: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(old, CLONE_NEWNET) != 0:
                raise NetnsError(f"could not return from {ns}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(old)
        os.close(new)


def _disable_offloads(ns: str, dev: str) -> None:
    """Turn off TX checksum / segmentation offload on a veth end, so frames read by the userspace
    bridge carry finished checksums and are never larger than the MTU (legacy ethtool ioctls)."""
    SIOCETHTOOL = 0x8946
    with entered(ns):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for cmd in (0x24, 0x1F, 0x19, 0x17):     # ETHTOOL_SGSO, STSO, SSG, STXCSUM -> 0
                value = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
                ifreq = struct.pack("16sP", dev.encode(), ctypes.addressof(value))
                try:
                    fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
                except OSError as e:
                    raise NetnsError(f"cannot turn off offload {cmd:#x} on {dev} in {ns}: {e}") from e


class NetLink:
    """Two namespaces, `server_ns` and `client_ns`, reachable at SERVER_IP / CLIENT_IP."""

    def __init__(self, tag: str, backend: str, mtu: int):
        self.tag, self.backend, self.mtu = tag, backend, mtu
        self.server_ns, self.client_ns = f"ewam-srv-{tag}", f"ewam-cli-{tag}"
        self.mid_ns = f"ewam-mid-{tag}" if backend == "userspace" else None
        self.server_dev, self.client_dev = f"ews{tag}", f"ewc{tag}"     # <= 15 characters
        self.server_ip, self.client_ip = SERVER_IP, CLIENT_IP
        self._impairer: subprocess.Popen | None = None
        self.settings = {"delay_ms": 0.0, "jitter_ms": 0.0, "loss": 0.0, "rate_mbit": None}

    @classmethod
    def create(cls, mtu: int = 1500, backend: str | None = None) -> "NetLink":
        reason = unavailable_reason()
        if reason:
            raise NetnsError(reason)
        # The userspace bridge is the default: it is what ran on these machines (their kernels
        # have no sch_netem). WAM_NET_BACKEND=netem opts into the kernel's netem where it exists.
        backend = backend or os.environ.get("WAM_NET_BACKEND", "userspace")
        if backend == "netem" and not kernel_has_netem():
            raise NetnsError("WAM_NET_BACKEND=netem, but this kernel has no sch_netem "
                             "(\"Specified qdisc kind is unknown\"); unset it to use the userspace bridge")
        link = cls(f"{os.getpid() % 100000}{uuid.uuid4().hex[:3]}"[-8:], backend, mtu)
        try:
            link._build()
        except BaseException:
            link.close()
            raise
        return link

    def _build(self) -> None:
        s, c = self.server_ns, self.client_ns
        for ns in filter(None, (s, c, self.mid_ns)):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        if self.mid_ns is None:
            _ip("-n", s, "link", "add", self.server_dev, "type", "veth", "peer", "name", self.client_dev,
                "netns", c)
        else:
            m = self.mid_ns
            _ip("-n", m, "link", "add", "ms", "type", "veth", "peer", "name", self.server_dev, "netns", s)
            _ip("-n", m, "link", "add", "mc", "type", "veth", "peer", "name", self.client_dev, "netns", c)
            for dev in ("ms", "mc"):
                _ip("-n", m, "link", "set", dev, "mtu", str(self.mtu), "up")
        for ns, dev, ip in ((s, self.server_dev, SERVER_IP), (c, self.client_dev, CLIENT_IP)):
            _ip("-n", ns, "link", "set", dev, "mtu", str(self.mtu))
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            if self.mid_ns is not None:
                _disable_offloads(ns, dev)
        if self.mid_ns is not None:
            self._impairer = subprocess.Popen(
                ["ip", "netns", "exec", self.mid_ns, sys.executable, str(HERE / "impairer.py"), "ms", "mc"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if self._impairer.stdout.readline().strip() != "ready":
                raise NetnsError(f"the userspace impairer in {self.mid_ns} did not start "
                                 f"(exit code {self._impairer.poll()})")

    # -- what tests use -----------------------------------------------------------------------
    @property
    def server_prefix(self) -> list[str]:
        """Command prefix that runs a program inside the server's namespace."""
        return ["ip", "netns", "exec", self.server_ns]

    @property
    def client_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.client_ns]

    def client_side(self):
        """Context manager: this thread (and the threads it starts) on the client's side."""
        return entered(self.client_ns)

    def server_side(self):
        return entered(self.server_ns)

    def impair(self, delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0,
               rate_mbit: float | None = None) -> None:
        """Delay (plus uniform jitter), loss (0..1) and a bandwidth (Mbit/s, None: unlimited),
        applied in each direction. Jitter keeps the frames in order (netem's `rate` makes it so;
        without one netem reorders, which TCP reads as loss and which real links with queueing
        jitter do not do)."""
        self.settings = {"delay_ms": float(delay_ms), "jitter_ms": float(jitter_ms), "loss": float(loss),
                         "rate_mbit": None if rate_mbit is None else float(rate_mbit)}
        if self._impairer is not None:
            self._impairer.stdin.write(json.dumps(self.settings) + "\n")
            self._impairer.stdin.flush()
            if self._impairer.stdout.readline().strip() != "ok":
                raise NetnsError(f"the userspace impairer in {self.mid_ns} died (exit code {self._impairer.poll()})")
            return
        for ns, dev in ((self.server_ns, self.server_dev), (self.client_ns, self.client_dev)):
            if not (delay_ms or jitter_ms or loss or rate_mbit):
                _netns_exec(ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)
                continue
            _netns_exec(ns, "tc", "qdisc", "replace", "dev", dev, "root", "netem", "delay", f"{delay_ms}ms",
                        f"{jitter_ms}ms", "loss", f"{loss * 100}%", "rate",
                        f"{rate_mbit}mbit" if rate_mbit else "1gbit", "limit", "1000" if rate_mbit else "10000")

    def partition(self) -> None:
        """Cut the link: the server's interface goes down (packets either way are lost)."""
        _ip("-n", self.server_ns, "link", "set", self.server_dev, "down")

    def heal(self) -> None:
        _ip("-n", self.server_ns, "link", "set", self.server_dev, "up")

    def close(self) -> None:
        if self._impairer is not None and self._impairer.poll() is None:
            self._impairer.stdin.close()
            try:
                self._impairer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._impairer.kill()
                self._impairer.wait()
        for ns in filter(None, (self.client_ns, self.server_ns, self.mid_ns)):
            _ip("netns", "del", ns, check=False)        # takes its veth ends (and the pair) with it

    def __enter__(self) -> "NetLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
