"""policy.wire.surprise.ImaginedFrames: the frames at a chunk's imagined steps, also for a chunk
that arrives after its first imagined steps have passed (the request's latency)."""
import numpy as np

from policy.wire.surprise import ImaginedFrames


def frame(value: int) -> dict[str, np.ndarray]:
    return {"head": np.full((2, 2, 3), value, np.uint8)}


def test_imagined_frames_collects_the_imagined_steps():
    frames = ImaginedFrames(stride=2, count=4)
    frames.open(7, obs_tick=10)
    frames.open(8, obs_tick=14)
    done = []
    for tick in range(10, 30):
        done += frames.add(tick, {"head": np.full((2, 2, 3), tick, np.uint8)})
    assert [d.chunk_id for d in done] == [7, 8]
    assert done[0].steps == [2, 4, 6, 8] and [int(f[0, 0, 0]) for f in done[0].frames["head"]] == [12, 14, 16, 18]
    assert done[1].steps == [2, 4, 6, 8] and int(done[1].frames["head"][0][0, 0, 0]) == 16


def test_a_chunk_that_arrives_late_takes_its_past_steps_from_the_recent_frames():
    frames = ImaginedFrames(stride=2, count=4)          # lookback 4 ticks
    done = []
    for tick in range(10, 14):                          # the request is in flight: ticks 11..13 pass
        done += frames.add(tick, frame(tick))
    frames.open(5, obs_tick=10)                         # arrives 3 ticks (300 ms) late
    for tick in range(14, 20):
        done += frames.add(tick, frame(tick))
    assert [d.chunk_id for d in done] == [5]
    assert done[0].steps == [2, 4, 6, 8]
    assert [int(f[0, 0, 0]) for f in done[0].frames["head"]] == [12, 14, 16, 18]


def test_a_chunk_later_than_the_lookback_never_completes():
    frames = ImaginedFrames(stride=2, count=4, lookback=2)
    for tick in range(10, 15):
        frames.add(tick, frame(tick))
    frames.open(5, obs_tick=10)                         # step 2 (tick 12) is gone
    done = [d for tick in range(15, 20) for d in frames.add(tick, frame(tick))]
    assert done == []


def test_frames_are_copied_because_cameras_may_reuse_their_buffers():
    frames = ImaginedFrames(stride=2, count=4)
    buffer = frame(0)
    done = []
    frames.open(1, obs_tick=0)
    for tick in range(1, 9):
        buffer["head"][:] = tick                        # the camera writes into the same array
        done += frames.add(tick, buffer)
    assert [int(f[0, 0, 0]) for f in done[0].frames["head"]] == [2, 4, 6, 8]


def test_a_camera_missing_at_one_step_never_leaves_it_a_frame_short():
    # Under load a camera's capture fails for a tick: that tick's step is not taken for any camera.
    # Before, a camera absent at the first step got 7 frames to the others' 8 and the server refused.
    both = lambda t: {"head": np.full((2, 2, 3), t, np.uint8), "wrist": np.full((2, 2, 3), t, np.uint8)}
    for cameras in (("head", "wrist"), None):
        frames = ImaginedFrames(stride=2, count=4, cameras=cameras)
        frames.open(3, obs_tick=0)
        done = []
        for tick in range(1, 9):
            images = both(tick)
            if tick == 2:
                del images["wrist"]                        # the wrist camera failed at the first step
            done += frames.add(tick, images)
        if cameras is None:                                # first step's cameras, exactly: head only
            assert done and set(done[0].frames) == {"head"} and len(done[0].frames["head"]) == 4
        else:                                              # step 2 skipped: the chunk cannot complete
            assert done == []
        frames = ImaginedFrames(stride=2, count=4, cameras=cameras)
        frames.open(4, obs_tick=0)
        done = [d for tick in range(1, 9) for d in frames.add(tick, both(tick) if tick != 4 else {"head": both(4)["head"]})]
        assert done == []                                  # a later step missing a camera: skipped as well
