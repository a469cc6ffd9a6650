"""The policy server: one PolicyRunner behind a ZeroMQ ROUTER socket.

    python -m policy.server --checkpoint DIR [--device cuda] [--bind tcp://127.0.0.1:5555] [--keys DIR]
    python -m policy.server --preset sim-tiny --random-init
    python -m policy.server --runner testing          # numpy stand-in, for tests and transport benchmarks
    python -m policy.server --preset sim-tiny --random-init --batch 8   # several robots: batch their requests

Two threads. The socket thread owns the ROUTER: it decodes and checks every message, answers
hello and ping at once (even while the model is busy) and queues infer / preview jobs. The
worker thread owns the model and runs one job at a time, taken round-robin across clients
(each client's own requests stay in order). Inference goes before previews, except that a
preview which has waited `preview_max_wait_s` goes next, so previews never starve. Results go
back to the socket thread over an inproc socket (ZeroMQ sockets are not thread-safe).
Batching (`--batch N`, ServerConfig.max_batch; off by default): the worker takes, with the next
infer, the other clients' infers already queued (policy.serving.scheduler.get_batch, at most N,
one per client) and runs them in one runner.infer_batch() pass, where the runner has one
(WAMRunner). It never waits for a batch to fill, so a lone robot is served exactly as without
it; each reply's timings carry "batch" (how many were sampled together).

Binds loopback by default; any other interface requires CurveZMQ keys (policy.keys).
Once serving, the process prints one line to stdout, "policy server ready on ADDRESS" (READY_LINE;
all logs go to stderr); policy.serving.process.ServerProcess starts a server child and waits for it.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import zmq

from policy.wire import protocol
from policy.wire.netutil import is_loopback_host
from policy.serving.scheduler import FairScheduler, Job
from policy.wire.protocol import ErrorCode, Message, ProtocolError
from policy.serving.process import READY_LINE
from policy.serving.runner import PolicyRunner
from policy.wire.types import PROTOCOL_VERSION

log = logging.getLogger("policy.server")


class InsecureBindError(RuntimeError):
    """Binding off loopback without CurveZMQ keys."""


def is_local_address(address: str) -> bool:
    """True for tcp:// on a loopback interface and for ipc:// / inproc:// (never leave the machine)."""
    scheme, _, rest = address.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or not rest:
        raise ValueError(f"bind address {address!r} is not tcp://HOST:PORT, ipc://PATH or inproc://NAME")
    return is_loopback_host(rest.rsplit(":", 1)[0])


def check_bind(address: str, keys_dir: str | None) -> None:
    if keys_dir is None and not is_local_address(address):
        raise InsecureBindError(
            f"refusing to bind {address}: it is reachable from other machines and the policy server has no "
            "authentication without keys. Either bind tcp://127.0.0.1:PORT (and tunnel, e.g. ssh -L), or create "
            "CurveZMQ keys with `python -m policy.keys generate KEYS_DIR` and pass --keys KEYS_DIR here and "
            "keys=KEYS_DIR to the client")


@dataclass
class ServerConfig:
    bind: str = "tcp://127.0.0.1:5555"
    keys_dir: str | None = None
    max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES
    max_pending_per_client: int = 4       # more queued requests from one client get a "busy" error
    preview_max_wait_s: float = 0.5
    remembered_clients: int = 4096        # greeted client identities kept (LRU)
    max_batch: int = 1                    # infer requests of different clients sampled together (1: off)

    def __post_init__(self):
        if self.max_batch < 1:
            raise ValueError(f"ServerConfig.max_batch is {self.max_batch}; use 1 (no batching) or more")


class _NonFiniteActions(RuntimeError):
    """The runner's chunk holds NaN/inf: replied as ErrorCode.NON_FINITE, never sent as actions."""


class PolicyServer:
    def __init__(self, runner: PolicyRunner, config: ServerConfig | None = None):
        self.runner = runner
        self.config = config or ServerConfig()
        check_bind(self.config.bind, self.config.keys_dir)
        self.metadata = runner.metadata
        self.max_batch = self.config.max_batch if hasattr(runner, "infer_batch") else 1
        if self.max_batch < self.config.max_batch:
            log.warning("%s has no infer_batch(): serving one request at a time", type(runner).__name__)
        self.scheduler = FairScheduler(self.config.max_pending_per_client, self.config.preview_max_wait_s)
        self._greeted: OrderedDict[bytes, None] = OrderedDict()
        self._stop = threading.Event()
        self._context = zmq.Context()
        self._auth = None
        self._results_address = f"inproc://policy-results-{id(self)}"
        self.router = self._context.socket(zmq.ROUTER)
        self.router.linger = 0
        # A hard cap per frame well above the polite limit: oversize messages below it get an error
        # reply; beyond it ZeroMQ drops the connection before buffering gigabytes.
        self.router.maxmsgsize = 4 * self.config.max_message_bytes
        self.router.setsockopt(zmq.HEARTBEAT_IVL, 1000)      # ZMTP heartbeats: notice vanished clients
        self.router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
        self.router.ipv6 = "[" in self.config.bind
        if self.config.keys_dir is not None:
            self._setup_curve()
        self.router.bind(self.config.bind)
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._results = self._context.socket(zmq.PULL)
        self._results.bind(self._results_address)
        self._worker = threading.Thread(target=self._work, name="policy-worker", daemon=True)

    def _setup_curve(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        from policy.wire.keys import load_server_keys
        keys = load_server_keys(self.config.keys_dir)
        self._auth = ThreadAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(keys.authorized_dir))
        self.router.curve_secretkey = keys.secret
        self.router.curve_publickey = keys.public
        self.router.curve_server = True

    # -- socket thread -----------------------------------------------------------------------
    def serve(self) -> None:
        """Serve until stop() (from another thread or a signal handler)."""
        self._worker.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self._results, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(100))
                if self._results in events:
                    while True:
                        try:
                            frames = self._results.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self.router.send_multipart(frames, copy=False)
                if self.router in events:
                    for _ in range(64):       # bounded, so results are forwarded between bursts
                        try:
                            frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle(frames[0].bytes, frames[1:])
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _reply(self, identity: bytes, frames: list) -> None:
        self.router.send_multipart([identity] + frames, copy=False)

    def _error(self, identity: bytes, request_id: int, code: str, message: str) -> None:
        log.warning("client %s request %d: %s: %s", identity.hex(), request_id, code, message)
        self._reply(identity, protocol.encode_error(request_id, code, message))

    def _handle(self, identity: bytes, parts: list) -> None:
        received = time.perf_counter()
        try:
            msg = protocol.decode(parts, self.config.max_message_bytes)
        except ProtocolError as e:
            self._error(identity, protocol.peek_id(parts[0]) if parts else -1, e.code, str(e))
            return
        try:
            if msg.type == "ping":
                self._reply(identity, protocol.encode("ping", msg.id, {
                    "server_time": time.time(), "queued": self.scheduler.pending()}))
            elif msg.type == "hello":
                self._hello(identity, msg)
            elif msg.type == "infer" or msg.type in protocol.BACKGROUND_TYPES:
                self._enqueue(identity, msg, received)
            else:
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {msg.type!r}; "
                                    f"this server answers {', '.join(protocol.REQUEST_TYPES)}")
        except ProtocolError as e:
            self._error(identity, msg.id, e.code, str(e))

    def _hello(self, identity: bytes, msg: Message) -> None:
        client_version = msg.body.get("protocol_version", msg.version)
        if client_version != PROTOCOL_VERSION:
            raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                                f"client speaks protocol {client_version}, server speaks {PROTOCOL_VERSION}; "
                                "run the same release on both sides")
        self._greeted[identity] = None
        self._greeted.move_to_end(identity)
        while len(self._greeted) > self.config.remembered_clients:
            self._greeted.popitem(last=False)
        log.info("hello from client %s (%s)", identity.hex(), msg.body.get("client", "?"))
        self._reply(identity, protocol.encode("hello", msg.id, {"metadata": self.metadata.to_dict()}))

    def _enqueue(self, identity: bytes, msg: Message, received: float) -> None:
        if identity not in self._greeted:
            raise ProtocolError(ErrorCode.NO_HANDSHAKE,
                                "send hello before infer/preview (the server may have restarted)")
        if msg.type == "infer":
            payload = protocol.decode_observation(msg)
            self._check_observation(payload)
        elif msg.type == "familiarity":
            payload = msg.body.get("instruction")
            if not isinstance(payload, str) or not payload.strip():
                raise ProtocolError(ErrorCode.BAD_REQUEST, "familiarity request needs a non-empty string 'instruction'")
        elif msg.type == "surprise":
            payload = protocol.decode_surprise(msg)
        else:
            payload = msg.body.get("chunk_id")
            if not isinstance(payload, int):
                raise ProtocolError(ErrorCode.BAD_REQUEST, "preview request needs an integer 'chunk_id'")
        if not self.scheduler.put(Job(identity, msg, received, payload)):
            raise ProtocolError(ErrorCode.BUSY, f"{self.config.max_pending_per_client} requests from this client "
                                "are already queued; wait for their replies before sending more")

    def _check_observation(self, obs) -> None:
        md = self.metadata
        if obs.state.shape != (md.action_dim,):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"state has {obs.state.shape[0]} values, policy "
                                f"'{md.preset}' acts on {md.action_dim} (wrong robot for this policy?)")
        missing = [name for name in md.camera_names if name not in obs.images]
        if missing:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"missing camera images {missing}; the policy needs "
                                f"{md.camera_names}, the request has {sorted(obs.images)}")
        for name in md.camera_names:
            want = list(md.image_sizes[name])
            if list(obs.images[name].shape[:2]) != want:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"camera '{name}' image is "
                                    f"{list(obs.images[name].shape[:2])} (HxW), the policy expects {want}; "
                                    "the client resizes images after hello")

    # -- worker thread -----------------------------------------------------------------------
    def _work(self) -> None:
        out = self._context.socket(zmq.PUSH)
        out.linger = 0
        out.connect(self._results_address)
        try:
            while not self._stop.is_set():
                jobs = self.scheduler.get_batch(0.2, self.max_batch)
                if len(jobs) > 1:
                    self._run_batch(jobs, out)
                elif jobs:
                    self._run_job(jobs[0], out)
        finally:
            out.close()

    def _run_batch(self, jobs: list[Job], out: zmq.Socket) -> None:
        """Infer jobs of several clients in one runner.infer_batch() pass; each reply is checked and
        sent like a lone one. A failing batch is retried one by one, so one bad request fails alone."""
        started = time.perf_counter()
        live = []
        for job in jobs:
            timeout_ms = job.msg.body.get("timeout_ms")
            queue_ms = (started - job.received) * 1000
            if isinstance(timeout_ms, (int, float)) and queue_ms > timeout_ms:
                log.warning("client %s request %d: dropped after %.0f ms in the queue (client gave up at %.0f ms)",
                            job.identity.hex(), job.msg.id, queue_ms, timeout_ms)
            else:
                live.append(job)
        if len(live) <= 1:
            for job in live:
                self._run_job(job, out)
            return
        try:
            chunks = self.runner.infer_batch([job.payload for job in live])
        except Exception as e:  # noqa: BLE001 - one request's fault must not fail the others: alone, each
            log.warning("a batch of %d failed (%s: %s); running its requests one by one", len(live), type(e).__name__, e)
            for job in live:
                self._run_job(job, out)
            return
        inference_ms = (time.perf_counter() - started) * 1000
        for job, chunk in zip(live, chunks):
            queue_ms = (started - job.received) * 1000
            try:
                frames = self._chunk_frames(job, chunk, queue_ms, inference_ms)
            except _NonFiniteActions as e:
                log.error("client %s request %d: %s", job.identity.hex(), job.msg.id, e)
                frames = protocol.encode_error(job.msg.id, ErrorCode.NON_FINITE, str(e))
            except Exception as e:  # noqa: BLE001 - a malformed result: tell this client, keep serving
                log.exception("client %s request %d failed", job.identity.hex(), job.msg.id)
                frames = protocol.encode_error(job.msg.id, ErrorCode.INTERNAL, f"{type(e).__name__}: {e}")
            out.send_multipart([job.identity] + frames, copy=False)
        log.info("batch of %d infers (%s) | inference %.1f ms", len(live),
                 ", ".join(j.identity.hex()[:8] for j in live), inference_ms)

    def _chunk_frames(self, job: Job, chunk, queue_ms: float, inference_ms: float) -> list:
        """Check a runner's chunk (shape, NaN/inf) and encode the reply to `job`."""
        actions = np.asarray(chunk.actions, dtype=np.float32)
        if actions.shape != (self.metadata.chunk_length, self.metadata.action_dim):
            raise RuntimeError(f"runner returned actions of shape {actions.shape}, metadata says "
                               f"({self.metadata.chunk_length}, {self.metadata.action_dim})")
        if not np.all(np.isfinite(actions)):    # never let NaN/inf reach an arm
            raise _NonFiniteActions(f"the model returned {int(np.size(actions) - np.isfinite(actions).sum())} "
                                    f"NaN/inf values in chunk {chunk.chunk_id}; the chunk was not sent")
        chunk.actions = actions
        chunk.timings_ms.update(queue=queue_ms, inference=inference_ms,
                                server_total=(time.perf_counter() - job.received) * 1000)
        return protocol.encode_chunk(job.msg.id, chunk)

    def _run_job(self, job: Job, out: zmq.Socket) -> None:
        started = time.perf_counter()
        queue_ms = (started - job.received) * 1000
        if job.execute is not None:        # from the openpi / XPolicyLab endpoints (policy.serving.ws_bridge)
            job.execute(queue_ms)
            return
        client = job.identity.hex()
        timeout_ms = job.msg.body.get("timeout_ms")
        if isinstance(timeout_ms, (int, float)) and queue_ms > timeout_ms:
            log.warning("client %s request %d: dropped after %.0f ms in the queue (client gave up at %.0f ms)",
                        client, job.msg.id, queue_ms, timeout_ms)
            return
        try:
            if job.msg.type == "infer":
                chunk = self.runner.infer(job.payload)
                inference_ms = (time.perf_counter() - started) * 1000
                frames = self._chunk_frames(job, chunk, queue_ms, inference_ms)
                detail = f"chunk {chunk.chunk_id}"
            elif job.msg.type in ("familiarity", "surprise"):   # off the action path: queued behind infers
                result = (self.runner.familiarity(job.payload) if job.msg.type == "familiarity"
                          else self.runner.surprise(*job.payload))
                inference_ms = (time.perf_counter() - started) * 1000
                result["timings_ms"] = {"queue": queue_ms, "inference": inference_ms}
                frames = protocol.encode(job.msg.type, job.msg.id, result)
                detail = f"{job.msg.type} {result.get('cosine', result.get('surprise', float('nan'))):.3f}"
            else:
                video = np.ascontiguousarray(self.runner.preview(job.payload), dtype=np.uint8)
                inference_ms = (time.perf_counter() - started) * 1000
                frames = protocol.encode("preview", job.msg.id, {
                    "chunk_id": job.payload, "timings_ms": {"queue": queue_ms, "inference": inference_ms}},
                    {"frames": video})
                detail = f"preview of chunk {job.payload} {list(video.shape)}"
        except _NonFiniteActions as e:
            log.error("client %s request %d: %s", client, job.msg.id, e)
            frames = protocol.encode_error(job.msg.id, ErrorCode.NON_FINITE, str(e))
            inference_ms, detail = 0.0, "non-finite actions"
        except KeyError as e:
            frames = protocol.encode_error(job.msg.id, ErrorCode.UNKNOWN_CHUNK, str(e).strip("'\""))
            inference_ms, detail = 0.0, "unknown chunk"
        except NotImplementedError as e:
            frames = protocol.encode_error(job.msg.id, ErrorCode.UNSUPPORTED, str(e))
            inference_ms, detail = 0.0, "unsupported"
        except ValueError as e:
            if job.msg.type == "infer":
                log.exception("client %s request %d failed", client, job.msg.id)
            code = ErrorCode.INTERNAL if job.msg.type == "infer" else ErrorCode.BAD_REQUEST
            frames = protocol.encode_error(job.msg.id, code, f"{type(e).__name__}: {e}")
            inference_ms, detail = 0.0, "failed"
        except Exception as e:  # the model failed: tell the client, keep serving
            log.exception("client %s request %d failed", client, job.msg.id)
            frames = protocol.encode_error(job.msg.id, ErrorCode.INTERNAL, f"{type(e).__name__}: {e}")
            inference_ms, detail = 0.0, "failed"
        out.send_multipart([job.identity] + frames, copy=False)
        total_ms = (time.perf_counter() - job.received) * 1000
        log.info("client %s %s %d: %s | queue %.1f ms, %s %.1f ms, total %.1f ms", client, job.msg.type,
                 job.msg.id, detail, queue_ms, "inference" if job.msg.type == "infer" else "decode",
                 inference_ms, total_ms)

    def _shutdown(self) -> None:
        self._stop.set()
        self.scheduler.close()
        if self._worker.is_alive():
            self._worker.join(timeout=10)
        self.router.close(linger=0)
        self._results.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.term()


# -- command line --------------------------------------------------------------------------

def _parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def build_runner(args: argparse.Namespace) -> PolicyRunner:
    if args.runner == "testing":
        from policy.serving.testing_runner import TestingRunner, TestingRunnerConfig
        return TestingRunner(TestingRunnerConfig(
            camera_names=args.testing_cameras.split(","), image_size=_parse_size(args.testing_image_size),
            delay_s=args.testing_delay_ms / 1000, action_dim=args.testing_action_dim,
            fail_instruction=args.testing_fail_instruction))
    from policy.serving.wam_runner import load_runner  # torch is imported here, never in the client
    steps = tuple(int(s) for s in args.steps.split(","))
    if args.threads is None and args.device == "cpu":
        args.threads = 1
    return load_runner(checkpoint=None if args.random_init else args.checkpoint, preset=args.preset,
                       device=args.device, steps=steps, threads=args.threads, text_dir=args.text_dir,
                       vae_dir=args.vae_dir, compile=args.compile, dtype=args.dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint directory to serve")
    parser.add_argument("--preset", default="sim-tiny", help="model preset (default sim-tiny)")
    parser.add_argument("--random-init", action="store_true", help="serve random weights (tests, latency)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--steps", default="2,10", help="denoising steps T_v,T_a (default 2,10)")
    parser.add_argument("--text-dir", help="local umT5 encoder directory (config.json, weights, tokenizer); "
                        "needed by paper presets")
    parser.add_argument("--vae-dir", help="local Wan2.2 VAE directory (diffusers AutoencoderKLWan, the 'vae' "
                        "folder of Wan2.2-TI2V-5B-Diffusers); needed by paper presets")
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                        help="inference weights: bf16 (cast once, float32 islands as Wan) or fp32; "
                             "auto = bf16 on cuda, fp32 on cpu")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the joint passes and the action-only steps (cuda: CUDA graphs, mode=reduce-overhead; cpu: inductor with weight freezing; first chunk compiles)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on cpu, where the console and the sim share the "
                             "cores and one thread measured 4x faster than two under load; ignored on cuda)")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555")
    parser.add_argument("--keys", help="CurveZMQ key directory (required to bind off loopback)")
    parser.add_argument("--max-message-mb", type=float, default=protocol.DEFAULT_MAX_MESSAGE_BYTES / 2**20)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="sample up to N clients' simultaneous infer requests in one pass (1 = off, the "
                             "default); never waits for a batch to fill, so a lone robot is not delayed")
    parser.add_argument("--runner", choices=["wam", "testing"], default="wam",
                        help="'testing' serves a numpy stand-in (tests and transport benchmarks)")
    parser.add_argument("--testing-cameras", default="head,left_wrist,right_wrist")
    parser.add_argument("--testing-image-size", default="240x320", help="HxW")
    parser.add_argument("--testing-delay-ms", type=float, default=0.0)
    parser.add_argument("--testing-action-dim", type=int, default=14)
    parser.add_argument("--testing-fail-instruction", help="the testing runner raises for this instruction")
    from policy.serving import peer_endpoints      # --openpi-port, --xpolicylab-port (openpi, RoboTwin 2.0)
    peer_endpoints.add_arguments(parser)
    args = parser.parse_args(argv)
    # stdout carries the ready line only: anything else printed later (by a library) goes to
    # stderr, so a parent that stops reading our stdout after the ready line never blocks us.
    sys.stdout.flush()
    ready_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    from rich.console import Console
    from rich.logging import RichHandler
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s", datefmt="%H:%M:%S",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)])
    if args.runner == "wam" and not args.checkpoint and not args.random_init:
        parser.error("give --checkpoint DIR, or --random-init to serve random weights")
    if args.runner == "wam" and args.checkpoint and not args.random_init and not os.path.exists(args.checkpoint):
        parser.error(f"checkpoint {args.checkpoint} does not exist (train one, or pass --random-init)")
    try:
        check_bind(args.bind, args.keys)   # before loading a model for nothing
        peer_endpoints.check_arguments(args)
    except (InsecureBindError, peer_endpoints.InsecureWebsocketBindError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        runner = build_runner(args)
    except (ValueError, FileNotFoundError) as e:     # missing --text-dir / --vae-dir, bad directory
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.batch < 1:
        print(f"error: --batch {args.batch}: give 1 (no batching) or more", file=sys.stderr)
        return 2
    config = ServerConfig(bind=args.bind, keys_dir=args.keys, max_message_bytes=int(args.max_message_mb * 2**20),
                          max_batch=args.batch)
    try:
        server = PolicyServer(runner, config)
    except zmq.ZMQError as e:
        print(f"error: cannot bind {args.bind}: {e} (is another policy server running there?)", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    try:
        endpoints = peer_endpoints.start_endpoints(args, server)
    except OSError as e:
        print(f"error: cannot serve the websocket endpoints: {e} (is the port in use?)", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    md = server.metadata
    log.info("serving %s (action dim %d, H=%d, cameras %s) on %s%s", md.preset, md.action_dim, md.chunk_length,
             md.camera_names, server.address, " with CurveZMQ" if args.keys else "")
    print(f"{READY_LINE}{server.address}", file=ready_out, flush=True)
    ready_out.close()
    server.serve()
    peer_endpoints.stop_endpoints(endpoints)
    log.info("policy server stopped")
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is closed by now; skip the interpreter's teardown of torch and the text model,
    # which takes seconds and would make every restart and Ctrl-C feel hung.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
