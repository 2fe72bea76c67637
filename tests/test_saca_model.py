"""SACA's network (issue 10 §2/§3): ResNet-50-style variants train, the composition head closes
to 100 %, and the loss weighs every element by its training spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saca_lab.errors import InputError
from saca_lab.models import create_model, list_models
from saca_lab.models.resnet_dcnn import Bottleneck1d, ResNetDCNN

VARIANTS = [{"blocks": [1, 1, 1, 1], "block": "basic"}, {"downsample": "stride"},
            {"pooling": "bins", "head_bins": 4}, {"head_type": "regression"}, {"rest": False},
            {"stem_stride": 1, "blocks": [1, 1, 1, 1]}]
# every registered SACA model in its default form, and each option on the cheap one
CASES = [(name, {}) for name in list_models("resnet_dcnn*")] + [("resnet_dcnn_small", v) for v in VARIANTS]


@pytest.mark.parametrize("name, variant", CASES,
                         ids=[f"{n}-" + (",".join(f"{k}={v[k]}" for k in v) or "default") for n, v in CASES])
def test_every_registered_saca_variant_trains_a_few_steps(name, variant):
    torch.manual_seed(0)
    model = create_model(name, width=0.0625, n_outputs=3, **variant)
    x = torch.randn(6, 128)
    y = torch.softmax(torch.randn(6, 3), dim=1) * 90  # compositions that leave a rest
    target = y if model.head_type == "composition" else y / 30
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]


def test_default_is_resnet50_shaped():
    model = create_model("resnet_dcnn")
    stages = [m for m in model.features if isinstance(m, Bottleneck1d)]
    assert len(stages) == 3 + 4 + 6 + 3
    assert model.channels == (64, 128, 256, 512, 1024)
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in model.features) == 3
    assert model.config["blocks"] == [3, 4, 6, 3]


def test_composition_head_closes_to_100_with_its_rest_output():
    torch.manual_seed(0)
    model = create_model("resnet_dcnn_small", width=0.0625).eval()
    x = torch.randn(5, 128)
    with torch.no_grad():
        logits = model.head[0](model.features(x))
        out = model(x)
    assert logits.shape == (5, 11)  # ten elements and the unreported rest
    rest = torch.softmax(logits, dim=1)[:, -1] * 100
    torch.testing.assert_close(out.sum(1) + rest, torch.full((5,), 100.0))
    assert (out >= 0).all() and (rest > 0).all()


def test_composition_loss_weighs_each_element_by_its_training_std():
    from saca_lab.training.module import SpectraRegressor

    std = [5.0, 0.1]
    module = SpectraRegressor("resnet_dcnn_small", {"n_outputs": 2, "width": 0.0625}, ["Fe", "La"],
                              [70.0, 0.1], std, {})
    y = torch.tensor([[70.0, 0.1]])
    one_std_fe = module._mse(y + torch.tensor([[5.0, 0.0]]), y)
    one_std_la = module._mse(y + torch.tensor([[0.0, 0.1]]), y)
    torch.testing.assert_close(one_std_fe, one_std_la)
    # predictions stay in mass % (the composition head is not standardised)
    assert torch.equal(module.target_std, torch.ones(2))
    plain = SpectraRegressor("resnet_dcnn_small", {"n_outputs": 2, "width": 0.0625}, ["Fe", "La"],
                             [0.0, 0.0], [1.0, 1.0], {})
    assert float(plain._mse(y + torch.tensor([[5.0, 0.0]]), y)) == pytest.approx(12.5)


@pytest.mark.parametrize("kwargs, field", [({"blocks": [3, 4, 6]}, "blocks"), ({"block": "dense"}, "block"),
                                           ({"downsample": "avg"}, "downsample"),
                                           ({"pooling": "max"}, "pooling"), ({"stem_kernel": 4}, "stem_kernel"),
                                           ({"stem_stride": 9}, "stem_stride"), ({"head_bins": 0}, "head_bins")])
def test_bad_variant_options_name_the_field(kwargs, field):
    with pytest.raises(InputError, match=field):
        ResNetDCNN(**kwargs)
