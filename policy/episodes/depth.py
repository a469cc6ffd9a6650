"""Depth frames kept lossless: uint16 millimetres as 16-bit PNGs inside the data parquet.

LeRobot's "image" dtype stores PNG bytes in a struct<bytes, path> column; lossy yuv420p
video would corrupt millimetre values, so depth does not go to mp4. Encoding runs in a
background thread (OpenCV releases the GIL while compressing).
"""
from __future__ import annotations

import queue
import threading

import numpy as np
import pyarrow as pa

_STOP = object()
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])   # Hugging Face datasets.Image


class DepthEncoder:
    def __init__(self, name: str, compression: int = 1):
        self.name, self.compression = name, compression
        self.pngs: list[bytes] = []
        self.error: str | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"depth-{name}", daemon=True)
        self._thread.start()

    def push(self, depth: np.ndarray) -> None:
        self._queue.put(depth)

    def finish(self) -> None:
        self._queue.put(_STOP)

    def abort(self) -> None:
        self.finish()
        self._thread.join(10)

    def join(self) -> list[bytes]:
        self._thread.join()
        if self.error:
            raise RuntimeError(self.error)
        return self.pngs

    def _run(self) -> None:
        import cv2
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self.error:
                continue
            ok, buf = cv2.imencode(".png", item, [cv2.IMWRITE_PNG_COMPRESSION, self.compression])
            if not ok:
                self.error = f"PNG encoding of depth camera {self.name} failed"
            else:
                self.pngs.append(buf.tobytes())


def png_column(pngs: list[bytes]) -> pa.Array:
    return pa.array([{"bytes": b, "path": None} for b in pngs], type=IMAGE_STRUCT)


def decode_pngs(column) -> np.ndarray:
    """A struct<bytes, path> column of 16-bit PNGs -> (T, H, W) uint16."""
    import cv2
    items = column.to_pylist()
    return np.stack([cv2.imdecode(np.frombuffer(i["bytes"], np.uint8), cv2.IMREAD_UNCHANGED) for i in items])
