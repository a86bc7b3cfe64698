"""Fixtures shared by the core tests."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny inputs: extra intra-op threads only add synchronisation (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
