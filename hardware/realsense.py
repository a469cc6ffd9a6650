"""Intel RealSense cameras (pyrealsense2): colour, and depth aligned to colour.

A camera is chosen by serial number (`python -m hardware.realsense` lists them). With
`CameraConfig.source` set to a .bag/.db3 recording the same code plays that recording
through librealsense's own pipeline instead: useful to replay a session, and how the tests
run without a camera.

Options (CameraConfig.options, besides ThreadedCamera's):
  depth_width, depth_height: depth stream size (default: the colour size)
  wait_ms: how long one wait for a frameset may block (default 200)
  loop: replay a recording forever (default False)
  real_time: replay at the recorded pace (default True)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from hardware.camera import CameraConfig, CameraDisconnectedError, CameraError, CameraNotFoundError
from hardware.threaded_camera import ThreadedCamera

try:
    import pyrealsense2 as rs
except ImportError as e:  # pragma: no cover - pyrealsense2 is a project dependency
    rs = None
    _IMPORT_ERROR = e

LIST_HINT = "run `python -m hardware.realsense` to list connected cameras"


def _require_rs():
    if rs is None:
        raise CameraError(f"pyrealsense2 is not importable ({_IMPORT_ERROR}); "
                          "install it with `pip install pyrealsense2` (needs Debian libusb-1.0-0)")
    return rs


@dataclass(frozen=True)
class RealSenseDevice:
    serial: str
    name: str
    firmware: str
    usb_type: str
    product_line: str


def list_devices() -> list[RealSenseDevice]:
    """RealSense devices connected now (empty when none)."""
    rs_ = _require_rs()

    def info(dev, key) -> str:
        return dev.get_info(key) if dev.supports(key) else ""

    return [RealSenseDevice(serial=info(d, rs_.camera_info.serial_number), name=info(d, rs_.camera_info.name),
                            firmware=info(d, rs_.camera_info.firmware_version),
                            usb_type=info(d, rs_.camera_info.usb_type_descriptor),
                            product_line=info(d, rs_.camera_info.product_line))
            for d in rs_.context().query_devices()]


class RealSenseCamera(ThreadedCamera):
    """A RealSense camera by serial number (config.serial), or a recording (config.source)."""

    def __init__(self, config: CameraConfig):
        super().__init__(config)
        _require_rs()
        opts = config.options
        self.depth_size = (int(opts.get("depth_width", config.width)), int(opts.get("depth_height", config.height)))
        self.wait_ms = int(opts.get("wait_ms", 200))
        self.loop = bool(opts.get("loop", False))
        self.real_time = bool(opts.get("real_time", True))
        self.serial: str | None = config.serial   # filled in from the device once opened
        self._pipeline = None
        self._align = None
        self._depth_to_mm = 1.0

    @property
    def is_playback(self) -> bool:
        return self.config.source is not None

    def describe(self) -> str:
        what = f"recording {self.config.source}" if self.is_playback else f"serial {self.serial or 'any'}"
        return f"camera '{self.name}' (RealSense {what})"

    # -- ThreadedCamera hooks ------------------------------------------------------------------
    def _open(self) -> None:
        cfg = self.config
        rs_config = rs.config()
        if self.is_playback:
            if not os.path.isfile(cfg.source):
                raise CameraNotFoundError(f"{self.describe()}: no such file; check CameraConfig.source")
            rs_config.enable_device_from_file(cfg.source, repeat_playback=self.loop)
            # A recording has fixed stream sizes: take what is there and check it below.
            rs_config.enable_stream(rs.stream.color)
            if cfg.use_depth:
                rs_config.enable_stream(rs.stream.depth)
        else:
            # Fail fast: pipeline.start() would wait ~15 s for a device that is not there.
            connected = [d.serial for d in list_devices()]
            if (cfg.serial and cfg.serial not in connected) or not connected:
                raise self._not_found(connected)
            if cfg.serial:
                rs_config.enable_device(cfg.serial)
            rs_config.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
            if cfg.use_depth:
                rs_config.enable_stream(rs.stream.depth, *self.depth_size, rs.format.z16, cfg.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(rs_config)
        except RuntimeError as e:
            raise self._open_error(e) from None
        try:
            self._check_profile(profile)
        except CameraError:
            pipeline.stop()
            raise
        self._pipeline = pipeline
        self._align = rs.align(rs.stream.color) if cfg.use_depth else None

    def _open_error(self, e: RuntimeError) -> CameraError:
        text = str(e)
        if "No device connected" in text:
            return self._not_found([d.serial for d in list_devices()])
        if "ros reader" in text or "Failed to open" in text:
            return CameraNotFoundError(f"{self.describe()}: cannot read the recording ({text}); "
                                       "it must be a .bag or .db3 file written by librealsense")
        if "resolve" in text:
            return CameraError(f"{self.describe()}: the device does not offer the requested streams "
                               f"(colour {self.config.width}x{self.config.height}@{self.config.fps} rgb8"
                               + (f", depth {self.depth_size[0]}x{self.depth_size[1]} z16" if self.config.use_depth else "")
                               + f"): {text}. Pick a supported mode (e.g. 640x480 @ 30 fps)")
        return CameraError(f"{self.describe()}: failed to start: {text}")

    def _not_found(self, connected: list[str]) -> CameraNotFoundError:
        return CameraNotFoundError(
            f"{self.describe()} not found (connected: {', '.join(connected) or 'none'}). Check the USB cable "
            f"(USB 3 port), the serial in the rig config, and udev permissions; {LIST_HINT}")

    def _check_profile(self, profile) -> None:
        device = profile.get_device()
        serial = device.get_info(rs.camera_info.serial_number) if device.supports(rs.camera_info.serial_number) else ""
        if self.config.serial and serial != self.config.serial:
            raise CameraNotFoundError(f"{self.describe()}: the recording is from serial {serial}, "
                                      f"not {self.config.serial}; fix CameraConfig.serial or the source")
        self.serial = serial
        if self.is_playback:
            playback = device.as_playback()
            playback.set_real_time(self.real_time)
            color = profile.get_stream(rs.stream.color).as_video_stream_profile()
            if (color.width(), color.height()) != self.resolution:
                raise CameraError(f"{self.describe()}: colour is {color.width()}x{color.height()} but the "
                                  f"config asks for {self.config.width}x{self.config.height}; set width="
                                  f"{color.width()} and height={color.height()} in the camera config")
        self._depth_to_mm = 1.0
        if self.config.use_depth:
            try:
                # D4xx report 1 mm units; others (L515: 0.25 mm) are converted to millimetres.
                self._depth_to_mm = device.first_depth_sensor().get_depth_scale() * 1000.0
            except RuntimeError:
                self._depth_to_mm = 1.0

    def _grab(self):
        pipeline = self._pipeline
        if pipeline is None:
            raise CameraDisconnectedError("pipeline closed")
        try:
            ok, frames = pipeline.try_wait_for_frames(self.wait_ms)
        except RuntimeError as e:
            raise CameraDisconnectedError(str(e)) from None
        if not ok:
            if not self._device_present():
                raise CameraDisconnectedError("device unplugged" if not self.is_playback else "recording removed")
            return None  # a slow frame, or a recording that ended: read_latest reports it as stale
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        rgb = np.asanyarray(color.get_data()).copy()
        depth = None
        if self._align is not None:
            depth_frame = frames.get_depth_frame()
            if not depth_frame:
                return None
            depth = np.asanyarray(depth_frame.get_data())
            if abs(self._depth_to_mm - 1.0) > 1e-6:
                depth = np.clip(np.rint(depth * self._depth_to_mm), 0, 65535)
            depth = depth.astype(np.uint16, copy=True)
        return rgb, depth

    def _device_present(self) -> bool:
        if self.is_playback:
            return os.path.isfile(self.config.source)
        return any(d.serial == self.serial for d in list_devices())

    def _close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError:
                pass  # already stopped, or the device vanished: nothing left to release


def main() -> None:
    devices = list_devices()
    if not devices:
        print("no RealSense connected (check the USB 3 cable, and udev rules if running without root)")
        return
    print(f"{len(devices)} RealSense device(s):")
    for d in devices:
        print(f"  serial {d.serial}  {d.name}  firmware {d.firmware}  USB {d.usb_type or '?'}  {d.product_line}")


if __name__ == "__main__":
    main()
