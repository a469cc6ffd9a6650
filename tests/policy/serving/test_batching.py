"""Optional batching of simultaneous requests (policy.server --batch): WAMRunner.infer_batch equals
infer() run alone, and a real server answers two clients' simultaneous requests in one batch with
the unbatched server's answers, while a lone request is served alone, without waiting."""
import threading
import time

import numpy as np
import pytest

from policy.serving.process import ServerProcess
from policy.serving.wam_runner import load_runner
from policy.wire.client import PolicyClient
from policy.wire.netutil import free_port
from policy.wire.types import Observation

pytestmark = pytest.mark.usefixtures("one_thread")
CAMERAS = ("head", "left_wrist", "right_wrist")
INSTRUCTIONS = ("put the red block on the plate", "wipe the table", "stack the green block on the purple block")


def observation(seed: int, committed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation({c: rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for c in CAMERAS},
                       (rng.standard_normal(14) * 0.1).astype(np.float32), INSTRUCTIONS[seed % 3],
                       committed=(rng.standard_normal((committed, 14)) * 0.1).astype(np.float32) if committed else None)


def test_infer_batch_equals_infer_run_alone_in_order():
    runner = load_runner(seed=3)
    obs = [observation(0), observation(1), observation(2, committed=3), observation(3)]  # two prefix lengths
    state = runner.generator.get_state()
    alone = [runner.infer(o) for o in obs]
    runner.generator.set_state(state)
    batched = runner.infer_batch(obs)
    assert [c.chunk_id for c in batched] == [c.chunk_id + len(obs) for c in alone]
    assert all(c.timings_ms["batch"] == len(obs) for c in batched)
    assert np.abs(alone[0].actions - alone[1].actions).max() > 1e-3      # the inputs matter
    for a, b in zip(alone, batched):
        np.testing.assert_allclose(b.actions, a.actions, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batched[2].actions[:3], obs[2].committed, atol=1e-5)   # the prefix is kept
    assert runner.preview(batched[1].chunk_id).shape == runner.preview(alone[1].chunk_id).shape


def _server(batch: int) -> ServerProcess:
    address = f"tcp://127.0.0.1:{free_port()}"
    return ServerProcess(["--preset", "sim-tiny", "--random-init", "--bind", address, "--batch", str(batch),
                          "--log-level", "WARNING"], ready_timeout_s=240)


def test_a_server_batches_simultaneous_requests_with_unbatched_answers_and_serves_a_lone_one_alone():
    obs = {name: observation(seed) for seed, name in enumerate(["busy", "a", "b"])}
    with _server(batch=4) as proc:
        address = proc.address
        clients = {name: PolicyClient(address, timeout_s=60, hello_timeout_s=60) for name in obs}
        try:
            lone = clients["a"].infer(obs["a"])                   # warm-up, and a lone request: alone
            assert lone.timings_ms.get("batch", 1) == 1
            started = time.perf_counter()
            again = clients["a"].infer(obs["a"])
            lone_ms = (time.perf_counter() - started) * 1000
            assert again.timings_ms.get("batch", 1) == 1 and again.timings_ms["queue"] < 20, again.timings_ms
            # "busy" keeps the worker busy while a and b ask at the same time: they queue and go together.
            replies = {}
            def ask(name):
                replies[name] = clients[name].infer(obs[name])
            busy = threading.Thread(target=ask, args=("busy",))
            busy.start()
            time.sleep(0.03)
            askers = [threading.Thread(target=ask, args=(name,)) for name in ("a", "b")]
            for t in askers:
                t.start()
            for t in [busy, *askers]:
                t.join(60)
        finally:
            for c in clients.values():
                c.close()
    assert replies["busy"].timings_ms.get("batch", 1) == 1
    assert replies["a"].timings_ms["batch"] == 2 and replies["b"].timings_ms["batch"] == 2, \
        {n: r.timings_ms for n, r in replies.items()}
    # The same requests, one at a time in the batch's order, against an unbatched server.
    order = ["a", "a", "busy"] + sorted(["a", "b"], key=lambda n: replies[n].chunk_id)
    with _server(batch=1) as proc:
        with PolicyClient(proc.address, timeout_s=60, hello_timeout_s=60) as client:
            reference = [client.infer(obs[name]) for name in order]
    for name, ref in zip(order[3:], reference[3:]):
        assert ref.chunk_id == replies[name].chunk_id and ref.timings_ms.get("batch", 1) == 1
        np.testing.assert_allclose(replies[name].actions, ref.actions, rtol=1e-4, atol=1e-5)
    print(f"\nlone request {lone_ms:.0f} ms (served alone, queue {again.timings_ms['queue']:.1f} ms); "
          f"a+b batched: inference {replies['a'].timings_ms['inference']:.0f} ms")
