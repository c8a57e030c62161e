"""Look inside one computation: every output pixel worked out by hand equals the value the trained network
computed (read by a forward hook), each downsampler's window rule reproduces its module's real output, the
closed-form receptive fields match hand-computed values and contain the gradient's support, and Grad-CAM equals
a hand computation on a tiny net with known weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz import inside, saliency
from cnnviz.checkpoints import load_checkpoint
from cnnviz.conv_arithmetic import receptive_fields, unit_field
from cnnviz.downsample import list_downsamples, make_downsample
from cnnviz.models import build_model

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
TRAINED = [f"fashion-mnist-downsample_compare-{m}.pt" for m in list_downsamples()] + [
    "fashion-mnist-lenet5-max.pt", "cifar10-downsample_compare-blurmax.pt", "cifar10-lenet5-max.pt"]


def _close(hand: float, net: float) -> bool:
    """Equal to 1e-5: the hand sum is float64, the net's float32 (a few hundred products at most here)."""
    return abs(hand - net) <= 1e-5


def _pixels(shape, rng, n=40):
    """The four corners and the centre of the first and the last channel, plus `n` random pixels."""
    c, h, w = shape
    fixed = [(ch, i, j) for ch in (0, c - 1) for i, j in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1),
                                                         (h // 2, w // 2))]
    return fixed + [tuple(int(v) for v in (rng.integers(c), rng.integers(h), rng.integers(w))) for _ in range(n)]


@pytest.mark.data
@pytest.mark.parametrize("file", TRAINED)
def test_every_hand_computed_pixel_equals_the_hooked_activation_of_the_trained_net(file, fashion_mnist, cifar10):
    path = CHECKPOINTS / file
    if not path.exists():
        pytest.skip(f"{file} is not shipped in this checkout")
    ck = load_checkpoint(path)
    data = cifar10 if file.startswith("cifar10") else fashion_mnist
    rng = np.random.default_rng(0)
    layers = inside.inside_layers(ck.model)
    conv_count = sum(isinstance(getattr(ck.model, n), nn.Conv2d) for n in layers)
    assert conv_count == sum(isinstance(m, nn.Conv2d) for m in ck.model.children())  # every conv is explained
    for image in (0, 1234):
        x = data.normalize(data.test_x[image:image + 1])
        for layer in layers:
            io = inside.layer_io(ck.model, x, layer)
            for ch, i, j in _pixels(io.output.shape, rng):
                p = inside.explain(ck.model, io, ch, i, j)
                assert _close(p.value, p.hooked), (layer, ch, i, j, p.value, p.hooked)
    # The hook read the network's real output: the same as running the layers up to that point.
    names = [n for n, _ in ck.model.named_children()]
    last = inside.layer_io(ck.model, x, layers[-1])
    upto = names.index(layers[-1]) + (2 if last.relu else 1)
    with torch.no_grad():
        np.testing.assert_allclose(last.output, ck.model[:upto](x)[0].double().numpy(), rtol=0, atol=1e-6)


def _rule_module_pairs():
    """Every downsampler as its module, and the strided conv (the 'stride' method in a conv trunk)."""
    torch.manual_seed(0)
    pairs = [(m, make_downsample(m)) for m in list_downsamples()]
    return pairs + [("strided conv", nn.Conv2d(3, 4, 3, stride=2, padding=1)),
                    ("avg, padded, without the padding", nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)),
                    ("max, padded", nn.MaxPool2d(3, 2, padding=1))]


@pytest.mark.parametrize("size", [(24, 24), (9, 12), (7, 5), (3, 3)])
@pytest.mark.parametrize("name, module", _rule_module_pairs(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_window_rule_reproduces_its_modules_real_output_at_every_pixel(name, module, size):
    torch.manual_seed(1)
    x = torch.randn(1, 3, *size)  # odd sizes too: bilinear's last pixel, blurmax's reflected border
    model = nn.Sequential()
    model.add_module("layer", module)
    io = inside.layer_io(model, x, "layer")
    with torch.no_grad():
        real = module(x)[0].double().numpy()  # the oracle: the module itself
    np.testing.assert_array_equal(io.output, real)
    for ch, i, j in np.ndindex(*real.shape):
        p = inside.explain(model, io, ch, i, j)
        assert _close(p.value, real[ch, i, j]), (name, ch, i, j, p.value, real[ch, i, j])


def test_max_marks_its_winner_avg_its_mean_bilinear_four_weights_and_nearest_one_pixel():
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)  # the lecture's v1..v16
    x[0, 0, 0, 0] = 20.0  # v1 wins its block
    found = {}
    for method in ("max", "avg", "bilinear", "nearest", "blurmax"):
        model = nn.Sequential()
        model.add_module("pool", make_downsample(method))
        found[method] = inside.explain(model, inside.layer_io(model, x, "pool"), 0, 0, 0)
    assert found["max"].winner == (0, 0, 0) and found["max"].value == 20.0
    assert found["max"].rows == (0, 1) and found["max"].cols == (0, 1)
    np.testing.assert_array_equal(found["avg"].weights, np.full((1, 2, 2), 0.25))
    assert found["avg"].value == (20 + 2 + 5 + 6) / 4
    # x0.5, align_corners=False: output pixel 0 sits at source 0.5, half-way between pixels 0 and 1.
    assert found["bilinear"].rows == (0, 1) and found["bilinear"].cols == (0, 1)
    np.testing.assert_array_equal(found["bilinear"].weights, np.full((1, 2, 2), 0.25))
    assert found["nearest"].rows == (0,) and found["nearest"].cols == (0,) and found["nearest"].value == 20.0
    assert len(found["blurmax"].parts) == 9 and found["blurmax"].weights.sum() == pytest.approx(1.0)
    assert (1, 1) in found["blurmax"].reads((4, 4))  # the reflected row 1 / column 1


@pytest.mark.parametrize("in_size", [4, 7, 24, 25])
def test_bilinear_taps_follow_torchs_align_corners_false_rule(in_size):
    """Oracle: F.interpolate on one-hot rows reveals the weight of every input pixel in each output pixel."""
    eye = torch.eye(in_size)[:, None, None, :]  # (in, 1, 1, in): row k is the one-hot of pixel k
    weights = F.interpolate(eye, scale_factor=(1, 0.5), mode="bilinear", align_corners=False)[:, 0, 0]  # (in, out)
    for out in range(weights.shape[1]):
        (i0, i1), (w0, w1) = inside.linear_taps(out, in_size, 2.0)
        expect = np.zeros(in_size)
        expect[i0] += w0
        expect[i1] += w1
        np.testing.assert_allclose(weights[:, out].numpy(), expect, atol=1e-7)


def test_a_layer_without_a_hand_rule_is_not_offered_and_is_refused():
    class Min(nn.Module):
        def forward(self, x):
            return -F.max_pool2d(-x, 2)

    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(1, 2, 3))
    model.add_module("min", Min())
    assert inside.inside_layers(model) == ["conv"]
    io = inside.layer_io(model, torch.randn(1, 1, 8, 8), "min")
    with pytest.raises(ValueError, match="no hand rule"):
        inside.explain(model, io, 0, 0, 0)
    with pytest.raises(ValueError, match="outside"):
        inside.explain(model, inside.layer_io(model, torch.randn(1, 1, 8, 8), "conv"), 0, 6, 0)


# ---- receptive fields ------------------------------------------------------------------------------

def _geometry(arch, method):
    rows = receptive_fields(build_model(arch, (1, 28, 28), downsample=method), (1, 28, 28))
    return {r["name"]: (r["rf"], r["jump"], r["start"]) for r in rows if not r["whole_input"]}


def test_closed_form_receptive_fields_equal_the_hand_computed_values():
    # LeNet-5: conv 5 (padding 2) -> r 5, start -2; pool 2x2 -> r 5 + 1 = 6, jump 2; conv 5 -> 6 + 4*2 = 14;
    # pool 2x2 -> 14 + 1*2 = 16, jump 4. The padding moves the start, never the size.
    assert _geometry("lenet5", "max") == {"conv1": (5, 1, -2), "relu1": (5, 1, -2), "pool1": (6, 2, -2),
                                          "conv2": (14, 2, -2), "relu2": (14, 2, -2), "pool2": (16, 4, -2)}
    expect = {"max": (6, 2, 0), "avg": (6, 2, 0), "bilinear": (6, 2, 0),  # x0.5 reads pixels 2i and 2i+1
              "nearest": (5, 2, 0),  # one pixel of each 2x2 block: nothing added to the conv's 5
              "blurmax": (8, 2, -1)}  # dense 2x2 max: 5 + 1; 3x3 blur padded by 1 -> 6 + 2, start -1
    for method, pool in expect.items():
        assert _geometry("downsample_compare", method) == {"conv1": (5, 1, 0), "relu1": (5, 1, 0), "pool1": pool}
    assert _geometry("downsample_compare", "stride") == {"conv1": (5, 2, 0), "relu1": (5, 2, 0)}


def test_the_unit_field_of_one_unit_is_placed_by_start_and_jump():
    rows = receptive_fields(build_model("lenet5", (1, 28, 28)), (1, 28, 28))
    f = unit_field(rows, "pool2", 1, 3)  # rows -2 + 4 .. +15, columns -2 + 12 .. +15
    assert (f.top, f.left, f.bottom, f.right) == (2, 10, 17, 25) and f.size == (16, 16)
    assert unit_field(rows, "conv1", 0, 0).clipped(28, 28).size == (3, 3)  # the rest is padding
    with pytest.raises(ValueError, match="whole input"):
        unit_field(rows, "fc1", 0, 0)


@pytest.mark.data
@pytest.mark.parametrize("file", TRAINED[:7])
def test_the_gradients_support_lies_inside_the_theoretical_field(file, fashion_mnist):
    path = CHECKPOINTS / file
    if not path.exists():
        pytest.skip(f"{file} is not shipped in this checkout")
    model = load_checkpoint(path).model
    x = fashion_mnist.normalize(fashion_mnist.test_x[7:8])
    rows = receptive_fields(model, (1, 28, 28))
    nonzero = 0
    for layer in inside.inside_layers(model):
        io = inside.layer_io(model, x, layer)
        c, h, w = io.output.shape
        for ch, i, j in [(0, 0, 0), (c - 1, h - 1, w - 1), (c // 2, h // 2, w // 3), (1, 0, w - 1)]:
            erf = saliency.effective_field(model, x, layer, ch, i, j)  # (28, 28)
            f = unit_field(rows, layer, i, j).clipped(28, 28)
            inside_box = np.zeros_like(erf, bool)
            inside_box[f.top:f.bottom + 1, f.left:f.right + 1] = True
            assert not erf[~inside_box].any(), (layer, ch, i, j)
            nonzero += bool(erf.any())
            # Part 1 agrees: the pixels its window reads are inside the field too (for conv1, on the input).
            if layer == "conv1":
                reads = inside.explain(model, io, ch, i, j).reads((28, 28))
                assert all(inside_box[r, q] for r, q in reads)
    assert nonzero >= 3  # not vacuous: most of these units do depend on the image


def test_the_gradient_of_a_linear_net_fills_its_whole_theoretical_field():
    """Without ReLUs nothing gates the gradient: with positive weights every pixel of the field counts."""
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 1, 5, padding=2))
    model.add_module("pool1", nn.AvgPool2d(2, 2))
    model.add_module("conv2", nn.Conv2d(1, 1, 3))
    for p in model.parameters():
        nn.init.constant_(p, 0.1)
    erf = saliency.effective_field(model, torch.randn(1, 1, 28, 28), "conv2", 0, 5, 5)
    f = unit_field(receptive_fields(model, (1, 28, 28)), "conv2", 5, 5)
    rows, cols = np.nonzero(erf)
    assert (rows.min(), cols.min(), rows.max(), cols.max()) == (f.top, f.left, f.bottom, f.right)


# ---- Grad-CAM --------------------------------------------------------------------------------------

def _tiny_net():
    """conv 1x1 (1 -> 2 channels) + ReLU on a 2x2 image, flattened, one linear layer to 2 classes."""
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 2, 1))
    model.add_module("relu1", nn.ReLU())
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc1", nn.Linear(8, 2))
    with torch.no_grad():
        model.conv1.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        model.conv1.bias.copy_(torch.tensor([0.0, 0.5]))
        model.fc1.weight.copy_(torch.tensor([[1, 2, 3, 4, -1, 0, 1, 2], [0, 1, 0, -1, 2, 2, -2, 1.0]]))
        model.fc1.bias.zero_()
    return model.eval()


def test_grad_cam_equals_the_hand_computation_on_a_tiny_net_with_known_weights():
    x = np.array([[1.0, -1.0], [0.5, 2.0]])
    model = _tiny_net()
    w, b = np.array([2.0, -1.0]), np.array([0.0, 0.5])
    a = np.maximum(w[:, None, None] * x + b[:, None, None], 0)  # (2, 2, 2): [[2,0],[1,4]], [[0,1.5],[0,0]]
    fc = model.fc1.weight.detach().double().numpy().reshape(2, 2, 2, 2)  # (class, channel, row, col)
    for target in (0, 1):
        alpha = fc[target].mean(axis=(1, 2))  # d score / d A_k, averaged over the map (the score is linear in A)
        cam = np.maximum((alpha[:, None, None] * a).sum(0), 0)
        got = saliency.grad_cam(model, torch.tensor(x, dtype=torch.float32)[None, None], target, "relu1")
        np.testing.assert_allclose(got.weights, alpha, atol=1e-6)
        np.testing.assert_allclose(got.cam, cam, atol=1e-6)
        assert got.upsampled.shape == (2, 2) and got.probs.sum() == pytest.approx(1.0)
        # The input gradient by hand: the score's weight on each channel times the conv weight, where ReLU is on.
        on = (w[:, None, None] * x + b[:, None, None]) > 0
        grad = np.abs((fc[target] * w[:, None, None] * on).sum(0))
        np.testing.assert_allclose(saliency.input_gradient(model, torch.tensor(x, dtype=torch.float32)[None, None],
                                                           target), grad, atol=1e-6)
    assert [n for n, _ in model.named_children()] == ["conv1", "relu1", "flatten", "fc1"]
    assert not model.conv1._forward_hooks and model.conv1.weight.grad is None  # the shared model is untouched


def test_grad_cam_reads_the_last_conv_or_the_last_map_of_every_downsampler():
    for method in list_downsamples():
        model = build_model("downsample_compare", (1, 28, 28), downsample=method).eval()
        assert saliency.cam_layer(model, "last conv") == "relu1"
        last_map = saliency.cam_layer(model, "last map")
        assert last_map == ("relu1" if method == "stride" else "pool1")
        got = saliency.grad_cam(model, torch.randn(1, 1, 28, 28), 3, last_map)
        assert got.cam.shape == (12, 12) and got.upsampled.shape == (28, 28) and (got.cam >= 0).all()


# ---- the lecture's worked examples -------------------------------------------------------------------

def test_stride_1_gives_3x3_and_stride_2_gives_2x2_on_the_4x4_data_with_a_2x2_kernel():
    from cnnviz import worked
    from cnnviz.conv_arithmetic import conv_output_size

    out = worked.strided()
    v, w = worked.STRIDE_DATA, worked.STRIDE_KERNEL
    for s, expect_size in ((1, 3), (2, 2)):
        assert out[s].shape == (expect_size, expect_size) == (conv_output_size(4, 2, 0, s),) * 2
        hand = [[(v[i * s:i * s + 2, j * s:j * s + 2] * w).sum() for j in range(expect_size)]
                for i in range(expect_size)]  # the oracle: each window times the kernel, by hand
        np.testing.assert_array_equal(out[s], hand)
    assert out[1][0, 0] == 1 * 1 + 2 * 2 + 5 * 3 + 6 * 4 == out[2][0, 0]  # m1 is the same window in both
    np.testing.assert_array_equal(out[2], out[1][::2, ::2])  # stride 2 keeps every other stride-1 output


@pytest.mark.data
def test_two_2x2_poolings_take_a_220x220_map_to_110_then_55(fashion_mnist):
    from cnnviz import worked

    found = worked.pooled_twice(fashion_mnist.test_x[0])
    for p in found:
        assert [m.shape for m in p.maps] == [(220, 220), (110, 110), (55, 55)]
    x = torch.from_numpy(found[0].maps[0])[None, None]
    maxed, averaged = (next(p for p in found if p.method == m).maps[2] for m in ("max", "avg"))
    np.testing.assert_allclose(maxed, F.max_pool2d(x, 4)[0, 0].numpy())  # two 2x2 maxima = one 4x4 maximum
    np.testing.assert_allclose(averaged, F.avg_pool2d(x, 4)[0, 0].numpy(), atol=1e-6)  # float32 sums


@pytest.mark.data
def test_one_1x5x5_kernel_on_a_gray_image_and_one_3x5x5_kernel_on_a_colour_image(fashion_mnist, cifar10):
    from cnnviz import worked

    for data, name, c, out_size in ((fashion_mnist, "fashion-mnist", 1, 24), (cifar10, "cifar10", 3, 28)):
        path = CHECKPOINTS / f"{name}-downsample_compare-max.pt"
        if not path.exists():
            pytest.skip(f"{path.name} is not shipped in this checkout")
        model = load_checkpoint(path).model
        x = data.normalize(data.test_x[:1])
        k = worked.one_kernel(model, x, channel=5)
        assert k.kernel.shape == (c, 5, 5) and k.params == c * 25 + 1 and k.output.shape == (out_size, out_size)
        for i, j in ((0, 0), (10, 7), (out_size - 1, out_size - 1)):  # the oracle: the window times the kernel
            hand = max((k.image[:, i:i + 5, j:j + 5] * k.kernel).sum() + k.bias, 0.0)
            assert k.output[i, j] == pytest.approx(hand, abs=1e-5)
