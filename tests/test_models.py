"""The model registry and the SACA / TrCSL architectures: shapes, gradients, presets, bf16."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from saca_lab.errors import InputError
from saca_lab.models import (
    INPUT_KINDS,
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)
from saca_lab.models.cnn_se_lstm import SEBlock, SequenceLSTM
from saca_lab.models.resnet_dcnn import Percent

# small inputs of each kind keep the whole module well under 30 s on 2 CPU cores
SMALL_INPUT = {"spectrum_1d": (256,), "lines_1d": (256,), "image_2d": (32, 40)}
BATCH = 3
ALL = list_models()
ABLATIONS = {"trcsl": (True, True), "trcnn": (False, False),
             "trcnn_se": (True, False), "trcnn_lstm": (False, True)}


def _small(name: str) -> dict:
    # the full-width SACA network has 7 M parameters; 1/16 width exercises the same code
    if name.startswith("resnet_dcnn"):
        return {"width": 0.0625}
    # GLL's dense layers are built for one line-window length
    return {"in_length": SMALL_INPUT["lines_1d"][0]} if name == "gll" else {}


def _width(model: nn.Module) -> int:
    # models that predict a std output a mean and a log-variance per target (saca_lab.models.gll)
    return model.n_outputs * (2 if getattr(model, "predicts_std", False) else 1)


def _input(name: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(BATCH, *SMALL_INPUT[model_info(name).input_kind], generator=gen)


def _params(module: nn.Module) -> set[int]:
    return {id(p) for p in module.parameters()}


def test_registry_lists_every_paper_model():
    expected = {"resnet_dcnn", "resnet_dcnn_small"} | set(ABLATIONS) | {f"{n}_1d" for n in ABLATIONS}
    assert expected <= set(ALL)
    assert ALL == sorted(ALL)
    assert list_models("trcnn_se*") == ["trcnn_se", "trcnn_se_1d"]
    info = model_info("resnet_dcnn")
    assert isinstance(info, ModelInfo)
    assert (info.input_kind, info.default_input) == ("spectrum_1d", (4001,))
    assert model_info("trcsl").default_input == (125, 131)
    assert model_info("trcsl_1d").default_input == (143,)
    for name in ALL:
        info = model_info(name)
        assert info.input_kind in INPUT_KINDS and info.description


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_reaches_first_layer(name):
    torch.manual_seed(0)
    model = create_model(name, **_small(name))
    x = _input(name)
    out = model(x)
    assert out.shape == (BATCH, _width(model))
    assert torch.isfinite(out).all()
    # random weights: a plain sum of a composition head is constant and has no gradient
    (out * torch.randn_like(out)).sum().backward()
    first = next(p for p in model.features.parameters())
    assert first.grad is not None and torch.isfinite(first.grad).all()
    assert first.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ALL)
def test_channel_dim_optional_and_forward_is_head_of_features(name):
    model = create_model(name, **_small(name)).eval()
    x = _input(name)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(model(x.unsqueeze(1)), out)
        torch.testing.assert_close(model.head(model.features(x)), out)


@pytest.mark.parametrize("name", ALL)
def test_features_and_head_partition_the_parameters(name):
    model = create_model(name, **_small(name))
    features, head = _params(model.features), _params(model.head)
    assert features and head
    assert not features & head
    assert features | head == _params(model)


@pytest.mark.parametrize("name", ALL)
def test_config_rebuilds_the_same_architecture(name):
    model = create_model(name)
    config = json.loads(json.dumps(model.config))
    assert config == model.config
    rebuilt = create_model(name, **config)
    assert rebuilt.config == model.config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert (rebuilt.n_outputs, rebuilt.input_kind) == (model.n_outputs, model_info(name).input_kind)
    rebuilt.load_state_dict(model.state_dict())


def test_resnet_heads_and_width():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 256)
    comp = create_model("resnet_dcnn", width=0.0625, head_type="composition").eval()
    with torch.no_grad():
        out = comp(x)
    assert (out >= 0).all()
    # the default composition head has an unreported "rest" output; without it the ten sum to 100
    assert (out.sum(1) < 100).all()
    closed = create_model("resnet_dcnn", width=0.0625, rest=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(closed(x).sum(1), torch.full((4,), 100.0))
    reg = create_model("resnet_dcnn", width=0.0625, head_type="regression")
    assert not any(isinstance(m, Percent) for m in reg.head)
    assert comp.channels == (4, 8, 16, 32, 64)
    assert create_model("resnet_dcnn").channels == (64, 128, 256, 512, 1024)
    assert create_model("resnet_dcnn_small").channels == (8, 16, 32, 64, 128)
    assert comp.n_outputs == 10
    assert sum(isinstance(m, nn.MaxPool1d) for m in comp.features) == 3


def test_table1_values_on_trcsl():
    config = create_model("trcsl").config
    assert config["in_shape"] == [125, 131]
    assert config["dim"] == 2 and config["n_units"] == 4
    assert config["kernel_size"] == 3 and config["kernels"] == 32
    assert config["pooling"] == "avg" and config["dropout"] == 0.2
    assert config["activation"] == "relu" and config["se_hidden"] == 16
    assert config["lstm_hidden"] == 32 and config["fc_units"] == 128
    assert config["use_se"] and config["use_lstm"] and config["n_outputs"] == 4
    one_d = create_model("trcsl_1d").config
    assert (one_d["dim"], one_d["n_units"], one_d["in_length"]) == (1, 3, 143)
    assert (one_d["kernel_size"], one_d["kernels"]) == (3, 32)


@pytest.mark.parametrize("suffix", ["", "_1d"])
def test_ablation_presets_differ_exactly_in_se_and_lstm(suffix):
    full = create_model(f"trcsl{suffix}").config
    for name, (se, lstm) in ABLATIONS.items():
        model = create_model(f"{name}{suffix}")
        config = dict(model.config)
        assert (config.pop("use_se"), config.pop("use_lstm")) == (se, lstm)
        assert config == {k: v for k, v in full.items() if k not in ("use_se", "use_lstm")}
        modules = list(model.modules())
        assert any(isinstance(m, SEBlock) for m in modules) == se
        assert any(isinstance(m, SequenceLSTM) for m in modules) == lstm


def test_unknown_name_lists_registered_models():
    with pytest.raises(InputError, match="unknown model 'trcls'") as err:
        create_model("trcls")
    assert isinstance(err.value, ValueError)
    assert all(name in str(err.value) for name in ALL)
    with pytest.raises(InputError, match="resnet_dcnn_small"):
        model_info("nope")


def test_unknown_override_is_named_with_the_accepted_ones():
    with pytest.raises(InputError, match="bogus") as err:
        create_model("trcsl", bogus=1, kernels=8)
    assert "accepted:" in str(err.value) and "lstm_hidden" in str(err.value)
    with pytest.raises(InputError, match="width"):
        create_model("trcsl", width=0.5)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("trcsl", {"pooling": "min"}),
        ("trcsl", {"n_units": 6}),
        ("trcsl", {"activation": "swish"}),
        ("trcsl", {"dropout": 1.0}),
        ("trcsl", {"lstm_output": "mean"}),
        ("trcsl_1d", {"dropout_position": "tail"}),
        ("trcsl", {"dim": 1}),
        ("trcsl_1d", {"in_length": 4}),
        ("resnet_dcnn", {"head_type": "softmax"}),
        ("resnet_dcnn", {"width": 0}),
    ],
)
def test_bad_values_are_input_errors(name, overrides):
    with pytest.raises(InputError):
        create_model(name, **overrides)


def test_input_too_small_or_wrong_rank_is_an_input_error():
    model = create_model("trcsl")
    with pytest.raises(InputError, match="at least 16"):
        model(torch.rand(2, 8, 40))
    with pytest.raises(InputError, match="channel"):
        model(torch.rand(2, 3, 32, 40))


@pytest.mark.parametrize("activation", ["gelu", "tanh", "elu", "leaky_relu", "sigmoid"])
def test_activations_and_max_pooling(activation):
    model = create_model("trcsl_1d", activation=activation, pooling="max", n_units=2)
    assert model(torch.rand(2, 64)).shape == (2, 4)


def test_2d_lstm_weights_do_not_depend_on_input_size():
    model = create_model("trcsl").eval()
    with torch.no_grad():
        assert model(torch.rand(2, 125, 131)).shape == model(torch.rand(2, 32, 40)).shape


def test_bf16_autocast_channels_last_matches_fp32():
    torch.manual_seed(0)
    model = create_model("trcsl").eval()
    x = torch.rand(4, 1, 32, 40)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x.to(memory_format=torch.channels_last))
    assert out.shape == ref.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=5e-2)


def test_register_model_checks_its_metadata():
    with pytest.raises(ValueError, match="input_kind"):
        register_model("x", input_kind="spectrum_3d", default_input=(4,), description="")
    with pytest.raises(ValueError, match="default_input"):
        register_model("x", input_kind="image_2d", default_input=(4,), description="")
    with pytest.raises(ValueError, match="already registered"):
        register_model("trcsl", input_kind="image_2d", default_input=(4, 4),
                       description="")(lambda: nn.Identity())
    assert "x" not in list_models()


@pytest.mark.parametrize(("suffix", "lstm_last", "cnn_width"), [("_1d", 32, 32 * 17), ("", 32, 32 * 7 * 8)])
def test_lstm_hands_its_whole_output_sequence_to_the_head(suffix, lstm_last, cnn_width):
    """Issue 11 section 1: the LSTM variants' head sees as much as TrCNN's in 1D (17 x 32)."""
    cnn = create_model(f"trcnn{suffix}")
    assert cnn.n_head_inputs == cnn.head[1].in_features == cnn_width
    steps = 17 if suffix else 7  # the sequence: 17 positions in 1D, 7 rows (bands) in 2D
    for name in ("trcsl", "trcnn_lstm"):
        model = create_model(f"{name}{suffix}")
        assert model.config["lstm_output"] == "sequence"
        assert model.n_head_inputs == model.head[1].in_features == steps * 32
        last = create_model(f"{name}{suffix}", lstm_output="last")
        assert last.n_head_inputs == last.head[1].in_features == lstm_last
    # other input sizes are pooled to the design's sequence length: one head for any input
    model = create_model(f"trcsl{suffix}").eval()
    x = torch.rand(2, 256) if suffix else torch.rand(2, 48, 64)
    with torch.no_grad():
        assert model.features(x).shape == (2, steps * 32)


def test_sequence_output_keeps_where_a_feature_sits():
    """Moving a line along the input changes the sequence head input, not just its summary."""
    torch.manual_seed(0)
    lstm = SequenceLSTM(1, channels=4, hidden=8, layers=1, output="sequence", steps=6).eval()
    x = torch.zeros(1, 4, 6)
    early, late = x.clone(), x.clone()
    early[..., 1] = 1.0
    late[..., 4] = 1.0
    with torch.no_grad():
        a, b = lstm(early).view(6, 8), lstm(late).view(6, 8)
    # before the pulse the outputs are those of an empty input
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[2], b[2])


def test_dropout_position_moves_the_layer_not_the_weights():
    head = create_model("trcsl_1d")
    literal = create_model("trcsl_1d", dropout_position="features")
    assert isinstance(head.head.dropout, nn.Dropout) and head.head.dropout.p == 0.2
    assert not any(isinstance(m, nn.Dropout) for m in head.features.modules())
    assert isinstance(literal.features[-1], nn.Dropout)
    assert not any(isinstance(m, nn.Dropout) for m in literal.head.modules())
    # one state dict fits both (the dropout layer has no weights; the FC names do not move)
    assert head.state_dict().keys() == literal.state_dict().keys()
    literal.load_state_dict(head.state_dict())
    x = torch.rand(3, 143)
    with torch.no_grad():
        torch.testing.assert_close(head.eval()(x), literal.eval()(x))

