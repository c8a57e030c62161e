"""The registry's architectures: they build for both datasets, and their sizes are the lecture's."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnviz.downsample import list_downsamples, make_downsample
from cnnviz.engineered import EngineeredFrontEnd
from cnnviz.models import (build_model, class_score_map, count_params, get_arch, list_archs)
from cnnviz.summary import summary

FMNIST, CIFAR = (1, 28, 28), (3, 32, 32)
ALL_ARCHS = list_archs()


def options(arch: str) -> tuple:
    """Every `downsample=` value `arch` accepts (None for nets that never downsample)."""
    return get_arch(arch).downsamples or (None,)


# ---- every registered architecture ------------------------------------------------------------

@pytest.mark.parametrize("shape", [FMNIST, CIFAR], ids=["fashion-mnist", "cifar10"])
@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_every_arch_maps_a_batch_to_10_scores(arch, shape, seeded):
    model = build_model(arch, shape).eval()
    with torch.no_grad():
        out = model(torch.randn(3, *shape))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_every_downsample_option_builds_with_the_same_parameter_count(arch, seeded):
    counts = {}
    for method in options(arch):
        model = build_model(arch, FMNIST, downsample=method).eval()
        with torch.no_grad():
            assert model(torch.randn(2, *FMNIST)).shape == (2, 10), method
        counts[method] = count_params(model)
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_unaccepted_downsample_is_a_value_error_naming_the_options(arch):
    accepted = get_arch(arch).downsamples
    refused = [m for m in list_downsamples() if m not in accepted] + ["bogus"]
    for method in refused:
        with pytest.raises(ValueError) as err:
            build_model(arch, FMNIST, downsample=method)
        msg = str(err.value)
        assert method in msg
        for ok in accepted:
            assert ok in msg
        if not accepted:
            assert "does not downsample" in msg


def test_unknown_arch_is_a_value_error_listing_every_arch():
    with pytest.raises(ValueError) as err:
        build_model("resnet9000")
    for arch in ALL_ARCHS:
        assert arch in str(err.value)


def test_unknown_downsample_layer_lists_the_methods():
    with pytest.raises(ValueError) as err:
        make_downsample("median")
    for method in list_downsamples():
        assert method in str(err.value)


# ---- the lecture's numbers -------------------------------------------------------------------

@pytest.mark.parametrize("arch, shape, downsample, expected", [
    ("conv_only", FMNIST, None, 2_635_146),
    ("conv_only", CIFAR, None, 4_211_146),
    ("conv_pool", FMNIST, "max", 1_588_490),
    ("conv_stride", FMNIST, None, 1_588_490),
    ("same_padding", FMNIST, None, 1_818_890),
    ("lenet_fc", FMNIST, "max", 421_642),
    ("lenet_1x1", FMNIST, "max", 421_642),
    ("lenet5", FMNIST, "max", 61_706),
])
def test_parameter_count_equals_the_lecture(arch, shape, downsample, expected):
    assert count_params(build_model(arch, shape, downsample=downsample)) == expected


@pytest.mark.parametrize("method", get_arch("downsample_compare").downsamples)
def test_downsample_compare_has_592074_params_for_every_option(method):
    assert count_params(build_model("downsample_compare", FMNIST, downsample=method)) == 592_074


def test_lenet5_has_61706_params_and_the_lecture_layer_shapes():
    model = build_model("lenet5", FMNIST, downsample="max")
    shapes, x = {}, torch.zeros(2, *FMNIST)
    for name, layer in model.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    assert count_params(model) == 61_706
    assert [shapes[n] for n in ("conv1", "pool1", "conv2", "pool2", "flatten", "fc1", "fc2", "fc3")] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,), (84,), (10,)]
    assert isinstance(model.pool1, nn.MaxPool2d)


def test_lenet_1x1_turns_a_56x56_input_into_an_8x8_map_of_class_scores(seeded):
    model = build_model("lenet_1x1", FMNIST).eval()
    scores = class_score_map(model, torch.randn(4, 1, 56, 56))
    assert scores.shape == (4, 10, 8, 8)
    # On the 28x28 input it was built for, the map is 1x1 and equals the flattened output.
    x = torch.randn(4, *FMNIST)
    with torch.no_grad():
        torch.testing.assert_close(class_score_map(model, x)[:, :, 0, 0], model(x))


def test_class_score_map_refuses_a_net_with_a_fully_connected_head():
    with pytest.raises(ValueError):
        class_score_map(build_model("lenet_fc", FMNIST), torch.zeros(1, 1, 56, 56))


def test_vgg16_has_13_convs_for_both_datasets():
    for shape in (FMNIST, CIFAR):
        model = build_model("vgg16", shape)
        assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13


def test_vgg16_resizes_28x28_inputs_to_32x32_and_says_so_in_its_summary():
    rows = summary(build_model("vgg16", FMNIST), FMNIST).rows
    assert rows[0]["name"] == "resize" and rows[0]["output_shape"] == (1, 32, 32)
    assert "resize" not in [r["name"] for r in summary(build_model("vgg16", CIFAR), CIFAR).rows]


@pytest.mark.parametrize("shape", [FMNIST, CIFAR], ids=["fashion-mnist", "cifar10"])
def test_mlp_parameter_count_equals_its_formula(shape):
    n_in = shape[0] * shape[1] * shape[2]  # 784 or 3072
    expected = n_in * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert count_params(build_model("mlp", shape)) == expected


@pytest.mark.parametrize("arch", [a for a in list_archs("baseline")
                                  if isinstance(getattr(build_model(a, FMNIST), "front", None),
                                                EngineeredFrontEnd)])
def test_engineered_front_end_parameters_are_all_frozen(arch):
    model = build_model(arch, CIFAR)
    front = list(model.front.parameters())
    assert front and not any(p.requires_grad for p in front)
    assert count_params(model) - count_params(model, trainable_only=True) == sum(p.numel() for p in front)
    # Everything after the front end learns.
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("front."))


def test_engineered_archs_are_registered():
    assert {"engineered", "engineered_scharr"} <= set(ALL_ARCHS)


def test_layers_are_named_in_the_lecture_words():
    names = dict(build_model("lenet5", FMNIST).named_children())
    assert {"conv1", "pool1", "conv2", "pool2", "flatten", "fc1", "fc2", "fc3"} <= set(names)
    for arch in list_archs("cnn"):
        children = dict(build_model(arch, FMNIST).named_children())
        assert isinstance(children.get("conv1"), nn.Conv2d), arch


@pytest.mark.parametrize("arch", [a for a in ALL_ARCHS if "max" in get_arch(a).downsamples])
def test_max_pooling_archs_have_a_pool1_layer(arch):
    assert isinstance(dict(build_model(arch, FMNIST, downsample="max").named_children()).get("pool1"),
                      nn.MaxPool2d)


def test_stride_option_replaces_pooling_by_stride_2_convs():
    model = build_model("conv_pool", FMNIST, downsample="stride")
    children = dict(model.named_children())
    assert not any(n.startswith("pool") for n in children)
    assert [children[f"conv{i}"].stride for i in range(1, 6)] == [(1, 1), (2, 2), (1, 1), (2, 2), (1, 1)]
