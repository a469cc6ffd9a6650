"""The policy server's request order: round-robin per client, infer before preview."""
import time

from policy.wire import protocol
from policy.serving.scheduler import FairScheduler, Job


def test_fair_scheduler_orders_and_limits():
    sched = FairScheduler(max_pending_per_client=2, preview_max_wait_s=0.5)
    now = time.perf_counter()

    def job(client, kind, i, age=0.0):
        return Job(client, protocol.Message(kind, i, 0.0), now - age)
    assert sched.put(job(b"a", "infer", 1)) and sched.put(job(b"a", "infer", 2))
    assert not sched.put(job(b"a", "infer", 3))           # over the per-client limit
    assert sched.put(job(b"b", "preview", 4)) and sched.put(job(b"b", "infer", 5))
    assert [sched.get(0).msg.id for _ in range(4)] == [1, 5, 2, 4]   # infer round-robin, preview last
    assert sched.put(job(b"c", "infer", 6)) and sched.put(job(b"d", "preview", 7, age=1.0))
    assert sched.get(0).msg.id == 7                       # a preview that waited too long goes first
    assert sched.get(0).msg.id == 6 and sched.get(0) is None


def _job(client, kind, i, execute=None):
    return Job(client, protocol.Message(kind, i, 0.0), time.perf_counter(), execute=execute)


def test_batch_takes_other_clients_pending_infers_one_each_in_round_robin_order():
    sched = FairScheduler(max_pending_per_client=4)
    for client, ids in ((b"a", (1, 2)), (b"b", (3,)), (b"c", (4, 5)), (b"d", (6,))):
        for i in ids:
            assert sched.put(_job(client, "infer", i))
    assert sched.put(_job(b"b", "preview", 7))
    assert [j.msg.id for j in sched.get_batch(0, 3)] == [1, 3, 4]      # one per client, at most 3
    assert [j.msg.id for j in sched.get_batch(0, 8)] == [6, 2, 5]      # d had waited longest, then a, c
    assert [j.msg.id for j in sched.get_batch(0, 8)] == [7]            # previews are never batched
    assert sched.get_batch(0, 8) == []


def test_a_lone_request_is_taken_at_once_and_alone():
    """No waiting window: with one request pending, get_batch returns it as soon as it is put."""
    sched = FairScheduler()
    assert sched.put(_job(b"a", "infer", 1))
    t0 = time.perf_counter()
    batch = sched.get_batch(1.0, 8)
    assert [j.msg.id for j in batch] == [1] and time.perf_counter() - t0 < 0.05


def test_endpoint_jobs_run_alone():
    sched = FairScheduler()
    run = lambda queue_ms: None   # noqa: E731 - a ws_bridge job's execute()
    assert sched.put(_job(b"ws", "infer", 1, execute=run)) and sched.put(_job(b"a", "infer", 2))
    assert sched.put(_job(b"b", "infer", 3))
    assert [j.msg.id for j in sched.get_batch(0, 8)] == [1]
    assert [j.msg.id for j in sched.get_batch(0, 8)] == [2, 3]
