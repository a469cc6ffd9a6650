import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread: the 2 cores are shared with other jobs, and spinning OpenMP threads
    under oversubscription turn milliseconds into seconds. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
