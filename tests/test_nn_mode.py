"""eval_mode / frozen: the module's mode and each parameter's gradient flag come back as they were, even on error."""

from __future__ import annotations

import pytest
from torch import nn

from audiolvm.nn.mode import eval_mode, frozen


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_restores_the_previous_mode_after_an_error(training: bool) -> None:
    model = _model().train(training)
    with pytest.raises(RuntimeError), eval_mode(model) as inside:
        assert inside is model and not any(m.training for m in model.modules())
        raise RuntimeError("boom")
    assert all(m.training == training for m in model.modules())


def test_frozen_restores_each_parameters_own_flag() -> None:
    model = _model().train()
    model[0].bias.requires_grad_(False)  # a mixed state: one parameter was already frozen
    before = [p.requires_grad for p in model.parameters()]
    with pytest.raises(ValueError), frozen(model):
        assert not any(p.requires_grad for p in model.parameters()) and not model.training
        raise ValueError("boom")
    assert [p.requires_grad for p in model.parameters()] == before and before.count(False) == 1
    assert model.training
