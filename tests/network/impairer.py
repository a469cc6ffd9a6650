"""A userspace stand-in for `tc netem`: bridges two interfaces, delaying and dropping frames.

    ip netns exec MID python tests/network/impairer.py IF_A IF_B

Used by netns.py only where the kernel has no netem qdisc (some VM kernels lack sch_netem).
Every Ethernet frame that arrives on one interface leaves on the other after `delay_ms` plus a
uniform jitter in [-jitter_ms, +jitter_ms] 
or is dropped with probability `loss` — real packet loss, which TCP must retransmit. With
`rate_mbit` each direction is a link of that bandwidth: a frame waits for the frames ahead of it
to be sent (len * 8 / rate each) and is dropped when `limit` frames already wait (netem's
`rate` and `limit`: tail drop, 1000 frames by default). Frames keep their order (a frame never leaves before the one ahead of it, as on a real link whose delay
varies by queueing; netem behaves so when given a rate, which netns.py always gives it). Settings
come as JSON lines on stdin ({"delay_ms": 50, "jitter_ms": 20, "loss": 0.02, "rate_mbit": 4}), each acknowledged by
"ok" on stdout; "ready" is printed once both interfaces are open; EOF on stdin ends it.
"""
from __future__ import annotations

import heapq
import json
import os
import random
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main(a: str, b: str) -> int:
    socks = {}
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        socks[name] = s
    peer = {socks[a]: socks[b], socks[b]: socks[a]}
    settings = {"delay_ms": 0.0, "jitter_ms": 0.0, "loss": 0.0, "rate_mbit": None, "limit": 1000}
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    due: list[tuple[float, int, socket.socket, bytes]] = []
    seq = 0
    last_due = {s: 0.0 for s in peer}              # per outgoing interface: keep order
    busy_until = {s: 0.0 for s in peer}            # per outgoing interface: when its "wire" is free
    waiting = {s: 0 for s in peer}                 # frames queued per outgoing interface
    stdin = sys.stdin.buffer
    print("ready", flush=True)
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else 1.0
        readable, _, _ = select.select([*peer, stdin], [], [], timeout)
        for s in readable:
            if s is stdin:
                line = stdin.readline()
                if not line:
                    return 0
                settings.update(json.loads(line))
                print("ok", flush=True)          # netns.py waits for this: later frames see the new settings
                continue
            for _ in range(256):
                try:
                    data, address = s.recvfrom(70000)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:          # ENETDOWN after a link went down: keep bridging
                    break
                if address[2] == PACKET_OUTGOING:      # our own injected frames, seen on the way out
                    continue
                if settings["loss"] and rng.random() < settings["loss"]:
                    continue
                delay = settings["delay_ms"] + rng.uniform(-settings["jitter_ms"], settings["jitter_ms"])
                seq += 1
                out = peer[s]
                now = time.monotonic()
                sent = now
                if settings["rate_mbit"]:
                    if waiting[out] >= settings["limit"]:
                        continue                      # the link's queue is full: tail drop
                    sent = busy_until[out] = max(now, busy_until[out]) + len(data) * 8 / (settings["rate_mbit"] * 1e6)
                last_due[out] = max(last_due[out], sent + max(0.0, delay) / 1000)
                waiting[out] += 1
                heapq.heappush(due, (last_due[out], seq, out, data))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, out, data = heapq.heappop(due)
            waiting[out] -= 1
            try:
                out.send(data)
            except OSError:              # the far link is down or its queue full: the frame is lost
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
