"""The wire protocol between policy.wire.client (DEALER) and policy.server (ROUTER).

A message is a ZeroMQ multipart message: one msgpack header frame, then one raw frame per
numpy array (no copies on either side: arrays are sent from their own memory and read back
with np.frombuffer). The header describes every array by name, dtype and shape, so nothing
executable ever crosses the wire (never pickle: unpickling network data is remote code
execution).

    header = {"v": 1, "type": "infer", "id": 7, "t": 1732460000.12,
              "arrays": [["image.head", "|u1", [240, 320, 3]], ["state", "<f4", [14]]],
              "body": {"instruction": "put the red block on the plate"}}

Requests: hello, infer, preview, ping, familiarity, surprise. A reply carries the request's type
and id; a failed request is answered with type "error" and body {"code", "message"} (see ErrorCode).
- familiarity: body {"instruction"} -> body {"score", "cosine", "threshold", "familiar",
  "nearest": [{"instruction", "similarity"}, ...], "method"}: how close an instruction is to what
  the checkpoint was taught, in the policy's own text space (asked before START). Newer servers
  add "similar", "reason" (None when familiar), "reasons", "mentions" ([{"text", "colour",
  "noun", "role", "kind", "known"}]: what it names, for the scene test of policy.wire.familiarity)
  and "typos"; a client must not require them.
- surprise: body {"chunk_id", "steps": [2, 4, ...]} and arrays "frames.CAMERA" (T, H, W, 3) uint8,
  the frames the cameras delivered `steps` ticks after the chunk's observation -> body {"surprise",
  "per_latent", "frames_used", "thresholds", "state"}: what the policy imagined vs the codec's
  encoding of what then happened. Both are scheduled like previews, after every waiting infer.
This module imports neither torch nor zmq.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import msgpack
import numpy as np

from policy.wire.types import PROTOCOL_VERSION, ActionChunk, Observation

REQUEST_TYPES = ("hello", "infer", "preview", "ping", "familiarity", "surprise")
BACKGROUND_TYPES = ("preview", "familiarity", "surprise")   # queued behind every infer
ERROR = "error"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024   # three 1080p RGB views fit, a runaway client does not
MAX_HEADER_BYTES = 64 * 1024

# Byte order is part of the dtype string ("<f4"), so both ends agree on every machine.
ALLOWED_DTYPES = frozenset({"|u1", "|i1", "|b1", "<u2", "<i2", "<f2", "<i4", "<u4", "<f4", "<i8", "<f8"})


class ErrorCode:
    MALFORMED = "malformed"                # header or frames could not be decoded
    TOO_LARGE = "too_large"                # over the server's message size limit
    VERSION_MISMATCH = "version_mismatch"  # client and server speak different protocol versions
    NO_HANDSHAKE = "no_handshake"          # infer/preview before hello (e.g. after a server restart)
    UNKNOWN_TYPE = "unknown_type"
    BAD_REQUEST = "bad_request"            # well-formed but wrong for this policy (cameras, sizes, dims)
    BUSY = "busy"                          # this client already has too many requests queued
    UNKNOWN_CHUNK = "unknown_chunk"        # preview of a chunk the runner no longer keeps
    INTERNAL = "internal"                  # the model raised
    NON_FINITE = "non_finite"              # the model returned NaN/inf actions; nothing was sent
    UNSUPPORTED = "unsupported"            # this runner cannot answer this request (e.g. no imagined future)


class ProtocolError(ValueError):
    """A message that breaks the protocol; `code` is an ErrorCode value."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Message:
    type: str
    id: int
    sent_at: float                                     # sender's time.time()
    body: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    version: int = PROTOCOL_VERSION


# -- encoding --------------------------------------------------------------------------------

def encode(type: str, id: int, body: dict | None = None,
           arrays: dict[str, np.ndarray] | None = None) -> list:
    """Header bytes followed by one buffer per array, ready for send_multipart(copy=False)."""
    specs, buffers = [], []
    for name, array in (arrays or {}).items():
        array = np.ascontiguousarray(array)
        if array.dtype.str not in ALLOWED_DTYPES:
            raise ProtocolError(ErrorCode.BAD_REQUEST,
                                f"array '{name}' has dtype {array.dtype}, which the protocol does not carry; "
                                f"convert it to one of {sorted(ALLOWED_DTYPES)}")
        specs.append([name, array.dtype.str, list(array.shape)])
        buffers.append(memoryview(array).cast("B") if array.size else b"")
    header = {"v": PROTOCOL_VERSION, "type": type, "id": int(id), "t": time.time(),
              "arrays": specs, "body": body or {}}
    return [msgpack.packb(header, use_bin_type=True)] + buffers


def encode_error(id: int, code: str, message: str) -> list:
    return encode(ERROR, id, {"code": code, "message": message})


def encode_observation(request_id: int, obs: Observation, timeout_ms: float | None = None) -> list:
    arrays = {f"image.{name}": image for name, image in obs.images.items()}
    arrays["state"] = np.asarray(obs.state, dtype=np.float32)
    if obs.committed is not None and len(obs.committed):
        arrays["committed"] = np.ascontiguousarray(obs.committed, dtype=np.float32)
    body = {"instruction": obs.instruction}
    if timeout_ms is not None:
        body["timeout_ms"] = float(timeout_ms)
    return encode("infer", request_id, body, arrays)


def encode_chunk(request_id: int, chunk: ActionChunk) -> list:
    body = {"chunk_id": int(chunk.chunk_id),
            "timings_ms": {str(k): float(v) for k, v in chunk.timings_ms.items()}}
    return encode("infer", request_id, body, {"actions": np.asarray(chunk.actions, dtype=np.float32)})


# -- decoding --------------------------------------------------------------------------------

def _reject_ext(code: int, data: bytes):
    raise ProtocolError(ErrorCode.MALFORMED, f"msgpack extension type {code} is not allowed in headers")


def frames_size(frames: Sequence) -> int:
    return sum(memoryview(f).nbytes for f in frames)


def peek_id(header_frame) -> int:
    """Best-effort request id of a message that failed to decode, so the error reply can carry it."""
    try:
        header = msgpack.unpackb(memoryview(header_frame), raw=False, strict_map_key=True, ext_hook=_reject_ext)
        return int(header["id"]) if isinstance(header, dict) and isinstance(header.get("id"), int) else -1
    except Exception:
        return -1


def decode(frames: Sequence, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
           check_version: bool = True) -> Message:
    """Frames (bytes, memoryviews or zmq.Frame) -> Message; raises ProtocolError naming the problem."""
    if not frames:
        raise ProtocolError(ErrorCode.MALFORMED, "empty message: expected a msgpack header frame")
    size = frames_size(frames)
    if size > max_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE,
                            f"message is {size / 1e6:.1f} MB, the limit is {max_bytes / 1e6:.1f} MB; "
                            "send smaller images (the client resizes to the policy's image_sizes)")
    header_view = memoryview(frames[0])
    if header_view.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE,
                            f"header frame is {header_view.nbytes} bytes, limit {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(header_view, raw=False, strict_map_key=True, ext_hook=_reject_ext)
    except ProtocolError:
        raise
    except Exception as e:
        raise ProtocolError(ErrorCode.MALFORMED, f"header is not valid msgpack ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise ProtocolError(ErrorCode.MALFORMED, f"header must be a map, got {type(header).__name__}")
    version = header.get("v")
    if not isinstance(version, int):
        raise ProtocolError(ErrorCode.MALFORMED, "header has no integer protocol version 'v'")
    if check_version and version != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                            f"peer speaks protocol version {version}, this side speaks {PROTOCOL_VERSION}; "
                            "run the same release of the console and the policy server")
    msg_type, msg_id, sent_at = header.get("type"), header.get("id"), header.get("t", 0.0)
    body, specs = header.get("body", {}), header.get("arrays", [])
    if not isinstance(msg_type, str):
        raise ProtocolError(ErrorCode.MALFORMED, "header has no string 'type'")
    if not isinstance(msg_id, int) or isinstance(msg_id, bool):
        raise ProtocolError(ErrorCode.MALFORMED, "header has no integer request 'id'")
    if not isinstance(sent_at, (int, float)) or not isinstance(body, dict) or not isinstance(specs, list):
        raise ProtocolError(ErrorCode.MALFORMED, "header fields 't', 'body' or 'arrays' have the wrong type")
    if len(specs) != len(frames) - 1:
        raise ProtocolError(ErrorCode.MALFORMED,
                            f"header describes {len(specs)} arrays but {len(frames) - 1} data frames arrived")
    arrays = {}
    for spec, frame in zip(specs, frames[1:], strict=True):
        name, array = _decode_array(spec, frame)
        if name in arrays:
            raise ProtocolError(ErrorCode.MALFORMED, f"array '{name}' appears twice")
        arrays[name] = array
    return Message(type=msg_type, id=msg_id, sent_at=float(sent_at), body=body, arrays=arrays, version=version)


def _decode_array(spec, frame) -> tuple[str, np.ndarray]:
    if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)
            and isinstance(spec[1], str) and isinstance(spec[2], list)):
        raise ProtocolError(ErrorCode.MALFORMED, f"array spec must be [name, dtype, shape], got {spec!r:.80}")
    name, dtype, shape = spec
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError(ErrorCode.MALFORMED, f"array '{name}': dtype {dtype!r} is not allowed")
    if len(shape) > 8 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(ErrorCode.MALFORMED, f"array '{name}': bad shape {shape!r:.80}")
    buffer = memoryview(frame)
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if buffer.nbytes != expected:
        raise ProtocolError(ErrorCode.MALFORMED,
                            f"array '{name}': {dtype} {shape} needs {expected} bytes, frame has {buffer.nbytes}")
    return name, np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)


def decode_observation(msg: Message) -> Observation:
    instruction = msg.body.get("instruction")
    if not isinstance(instruction, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "infer request has no string 'instruction'")
    state = msg.arrays.get("state")
    if state is None or state.ndim != 1 or state.dtype != np.float32:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "infer request needs a 1-D float32 array 'state'")
    images = {}
    for name, array in msg.arrays.items():
        if not name.startswith("image."):
            continue
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ProtocolError(ErrorCode.BAD_REQUEST,
                                f"image '{name[6:]}' must be HxWx3 uint8 RGB, got {array.dtype} {list(array.shape)}")
        images[name[6:]] = array
    committed = msg.arrays.get("committed")
    if committed is not None and (committed.dtype != np.float32 or committed.ndim != 2
                                  or committed.shape[1] != state.shape[0]):
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            f"'committed' must be (k, {state.shape[0]}) float32 actions (the committed prefix), "
                            f"got {committed.dtype} {list(committed.shape)}")
    return Observation(images=images, state=state, instruction=instruction, committed=committed)


def encode_surprise(request_id: int, chunk_id: int, steps: Sequence[int],
                    frames: dict[str, np.ndarray]) -> list:
    """A surprise request: frames[camera] is (T, H, W, 3) uint8, frame i seen steps[i] ticks after
    the chunk's observation."""
    arrays = {f"frames.{name}": np.asarray(stack, dtype=np.uint8) for name, stack in frames.items()}
    return encode("surprise", request_id, {"chunk_id": int(chunk_id), "steps": [int(s) for s in steps]}, arrays)


def decode_surprise(msg: Message) -> tuple[int, list[int], dict[str, np.ndarray]]:
    chunk_id, steps = msg.body.get("chunk_id"), msg.body.get("steps")
    if not isinstance(chunk_id, int) or not isinstance(steps, list) \
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "surprise request needs an integer 'chunk_id' and a list of "
                            "integer 'steps' (ticks after the chunk's observation)")
    frames = {}
    for name, array in msg.arrays.items():
        if not name.startswith("frames."):
            continue
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3 or array.shape[0] != len(steps):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"'{name}' must be ({len(steps)}, H, W, 3) uint8 (one frame "
                                f"per step), got {array.dtype} {list(array.shape)}")
        frames[name[7:]] = array
    if not frames:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "surprise request carries no 'frames.CAMERA' arrays")
    return chunk_id, list(steps), frames


def decode_chunk(msg: Message) -> ActionChunk:
    actions = msg.arrays.get("actions")
    chunk_id = msg.body.get("chunk_id")
    if actions is None or actions.ndim != 2 or not isinstance(chunk_id, int):
        raise ProtocolError(ErrorCode.MALFORMED, "infer reply needs a 2-D 'actions' array and an integer chunk_id")
    timings = {str(k): float(v) for k, v in dict(msg.body.get("timings_ms", {})).items()}
    return ActionChunk(actions=np.array(actions, dtype=np.float32), chunk_id=chunk_id, timings_ms=timings)
