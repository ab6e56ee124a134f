"""Layer outputs through the window's path: the sandboxed reader process loads Keras and evaluates."""

from __future__ import annotations

import keras_fixtures
import numpy as np
import pytest

from tensor_inspector.session.answers import TRUST, SessionFailure
from tensor_inspector.session.isolated import IsolatedSession


@pytest.fixture
def session():
    s = IsolatedSession()
    yield s
    s.shutdown()


def test_layer_output_evaluated_in_the_reader(session, tmp_path):
    reference = keras_fixtures.functional(tmp_path, ".keras")
    info = session.open(reference.path)
    ids = {n.id for n in info.nodes}
    assert {"dense/output", "dense/kernel", "lstm/output_2"} <= ids
    value = session.value(info.handle, "dense/output", feeds=reference.feeds)
    np.testing.assert_allclose(value.array, reference.outputs["dense"][0], rtol=1e-5, atol=1e-5)
    assert {s.name for s in value.feed_specs} == {"image", "series"}
    kernel = session.value(info.handle, "conv/kernel").array
    assert kernel.shape == (3, 3, 2, 3)


def test_lambda_model_asks_for_trust_then_evaluates(session, tmp_path):
    reference = keras_fixtures.with_lambda(tmp_path, ".h5")
    info = session.open(reference.path)
    with pytest.raises(SessionFailure, match="Lambda layer 'lam'") as refused:
        session.value(info.handle, "lam/output", feeds=reference.feeds)
    assert refused.value.failure.kind == TRUST  # the window answers it with the trust prompt
    assert "Lambda layer 'lam'" in refused.value.failure.needs
    assert not (tmp_path / keras_fixtures.LAMBDA_CANARY).exists()
    value = session.value(info.handle, "lam/output", feeds=reference.feeds, trust=True)
    np.testing.assert_allclose(value.array, reference.outputs["lam"][0], rtol=1e-5, atol=1e-5)
