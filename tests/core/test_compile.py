"""torch.compile and the hybrid step: the three paths trace as one graph, and compiled losses and
gradients equal eager ones (``aot_eager``: dynamo and autograd tracing without a C++ build)."""

from __future__ import annotations

import torch
from torch._dynamo.backends.debugging import aot_eager

from tests.toy_models import head_loss, make_engine

# The engine's three paths and their losses trace without a graph break; the balancer's one
# deliberate host sync (its finite check, before anything reaches the optimiser) is outside.
GRAPH_BREAKS_IN_THE_PATH_LOSSES = 0


def test_hybrid_paths_compile_without_graph_breaks_and_match_eager():
    engine, head = make_engine()
    engine.train()
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 2])

    def path_losses(images):
        feats = engine.forward_hybrid(images)
        return torch.stack([head_loss(head, f, y) for f in (feats.student_first,
                                                             feats.teacher_first, feats.student)])

    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)  # one graph per traced region: breaks + 1
        return aot_eager(graph_module, example_inputs)

    params = [p for p in engine.parameters() if p.requires_grad]
    eager = path_losses(x)
    eager_grads = torch.autograd.grad(eager.sum(), params, allow_unused=True)
    torch._dynamo.reset()
    compiled = torch.compile(path_losses, backend=counting_backend)(x)
    assert len(graphs) == GRAPH_BREAKS_IN_THE_PATH_LOSSES + 1
    compiled_grads = torch.autograd.grad(compiled.sum(), params, allow_unused=True)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(compiled_grads, eager_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
