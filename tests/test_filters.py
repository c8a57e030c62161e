"""cnnviz.filters: engineered vs learned first-layer filters, their maps, and their snapshots per epoch."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnviz import filters
from cnnviz.checkpoints import load_checkpoint
from cnnviz.engineered import engineered_kernels
from cnnviz.features import feature_maps
from cnnviz.models import build_model, first_conv
from cnnviz.config import RunConfig
from cnnviz.runs import run_training


# ---- engineered maps on a real image -----------------------------------------------------------

def test_engineered_maps_are_opencv_on_the_gray_float_image(cifar10):
    x = cifar10.test_x[7]  # (3, 32, 32) uint8
    names, maps = filters.engineered_maps(x)
    rgb = x.numpy().transpose(1, 2, 0).astype(np.float32) / 255
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert maps.shape == (len(names), 32, 32)
    np.testing.assert_allclose(maps[names.index("sobel_x")], cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), atol=1e-6)
    np.testing.assert_allclose(maps[names.index("sobel5_y")], cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=5), atol=1e-5)
    np.testing.assert_allclose(maps[names.index("laplacian")], cv2.Laplacian(gray, cv2.CV_32F), atol=1e-6)


def test_engineered_maps_of_a_grayscale_image_use_it_as_is(fashion_mnist):
    x = fashion_mnist.test_x[0]
    names, maps = filters.engineered_maps(x, ("scharr_x",))
    g = x[0].numpy().astype(np.float32) / 255
    np.testing.assert_allclose(maps[0], cv2.Scharr(g, cv2.CV_32F, 1, 0), atol=1e-6)


def test_learned_maps_need_a_conv_layer():
    with pytest.raises(ValueError, match="no learned conv"):
        filters.learned_maps(build_model("mlp"), torch.zeros(1, 1, 28, 28))
    assert filters.arch_has_first_conv("learned_conv") and not filters.arch_has_first_conv("engineered")


# ---- filters vs kernels -------------------------------------------------------------------------

def test_similarity_sentence_counts_filters_close_to_each_family(seeded):
    k = engineered_kernels(3)
    weights = torch.stack([torch.from_numpy(-2 * k["sobel_x"]), torch.from_numpy(k["laplacian"]),
                           torch.from_numpy(k["scharr_y"]), torch.randn(3, 3, generator=seeded)])[:, None]
    matches = filters.closest_engineered(weights)
    text = filters.similarity_sentence(matches, 0.8)
    # Scharr y and Sobel y are cos 0.98 apart, so the Scharr filter may be matched to either family.
    assert text.startswith("3 of 4 filters are within |cos| > 0.8 of a Sobel/Scharr/Laplacian kernel")
    assert "1 Laplacian" in text
    rows = filters.match_table(matches)
    assert rows[0]["closest kernel"] == "sobel_x" and rows[0]["cosine"] == pytest.approx(-1.0)
    assert rows[0]["|cosine|"] == pytest.approx(1.0)


def test_similarity_sentence_with_no_close_filter():
    weights = torch.zeros(2, 1, 3, 3)
    weights[:, 0, 1, 1] = 1.0  # a centre spike minus its mean: closest to the Laplacian, but not > 0.99
    text = filters.similarity_sentence(filters.closest_engineered(weights), 0.99)
    assert text.startswith("None of the 2 filters is within |cos| > 0.99")


def _cosine_oracle(f: np.ndarray, k: np.ndarray) -> float:
    """The rule written out for one filter and one kernel: mean removed, then the cosine (0 if dead)."""
    f = f - f.mean()
    n = np.linalg.norm(f) * np.linalg.norm(k)
    return float((f * k).sum() / n) if n > 0 else 0.0


def test_each_match_is_the_kernel_of_largest_abs_cosine_with_its_sign(seeded):
    snaps = torch.randn(4, 16, 3, 5, 5, generator=seeded)
    snaps[2, 0] = torch.from_numpy(-engineered_kernels(5)["sobel5_y"])  # an exact (negated) match
    snaps[3, 1] = 0  # a dead filter: cosine 0 with everything
    kernels = engineered_kernels(5)
    per_epoch = filters.matches_per_epoch(snaps)
    assert len(per_epoch) == 4 and all(len(ms) == 16 for ms in per_epoch)
    for e, ms in enumerate(per_epoch):
        for m in ms:
            f = snaps[e, m["filter"]].mean(0).numpy()  # the channel-averaged filter
            sims = {n: _cosine_oracle(f, k) for n, k in kernels.items()}
            assert m["all"] == pytest.approx(sims, abs=1e-6)
            assert abs(m["similarity"]) == pytest.approx(max(abs(v) for v in sims.values()), abs=1e-6)
            assert m["similarity"] == pytest.approx(sims[m["kernel"]], abs=1e-6)
    assert per_epoch[2][0]["kernel"] == "sobel5_y" and per_epoch[2][0]["similarity"] == pytest.approx(-1.0)
    assert per_epoch[3][1]["similarity"] == 0.0
    # One set of filters is the single-epoch case of the same rule.
    single = filters.closest_engineered(snaps[2])
    assert [m["kernel"] for m in single] == [m["kernel"] for m in per_epoch[2]]
    assert [m["similarity"] for m in single] == pytest.approx([m["similarity"] for m in per_epoch[2]], abs=1e-6)


def test_mean_best_similarity_is_one_for_engineered_kernels_and_counts_close():
    k = engineered_kernels(3)
    snaps = torch.stack([torch.stack([torch.from_numpy(k["sobel_x"]), torch.from_numpy(k["laplacian"])])[:, None]] * 3)
    np.testing.assert_allclose(filters.mean_best_similarity(snaps), [1.0, 1.0, 1.0], atol=1e-6)
    assert filters.count_close(snaps).tolist() == [2, 2, 2]


# ---- snapshots from a real (short) training run ------------------------------------------------

@pytest.fixture(scope="module")
def short_run(tmp_path_factory, fashion_mnist):
    """downsample_compare trained for 2 epochs on 1024 real images, saved as fp16 like the shipped runs."""
    out = tmp_path_factory.mktemp("runs") / "short.pt"
    cfg = RunConfig(arch="downsample_compare", dataset="fashion-mnist", downsample="max", epochs=2, seed=0,
                    batch_size=256, half=True)
    fm = fashion_mnist
    small = dataclasses.replace(fm, train_x=fm.train_x[:1024], train_y=fm.train_y[:1024],
                                test_x=fm.test_x[:512], test_y=fm.test_y[:512])
    path, _ = run_training(cfg, out=out, data=small)
    return load_checkpoint(path)


def test_snapshots_start_at_the_seeded_initialisation(short_run):
    snaps = filters.snapshots_of(short_run.meta)
    assert snaps is not None and snaps.shape == (3, 32, 1, 5, 5)  # epochs + 1
    torch.manual_seed(0)
    init = first_conv(build_model("downsample_compare", (1, 28, 28), 10, "max"))[1].weight
    torch.testing.assert_close(snaps[0], init.detach().half().float())
    assert not torch.equal(snaps[0], snaps[-1])  # the filters did learn


def test_snapshot_maps_of_the_last_epoch_equal_the_layer_output(short_run, fashion_mnist):
    ck = short_run
    name, conv = first_conv(ck.model)
    snaps = filters.snapshots_of(ck.meta)
    x = fashion_mnist.normalize(fashion_mnist.test_x[:1])
    ours = filters.snapshot_maps(ck.model, snaps[-1], x, conv.bias.detach())
    np.testing.assert_allclose(ours, feature_maps(ck.model, x, [name])[name][0].numpy(), atol=1e-5)
    oracle = F.conv2d(x, conv.weight, conv.bias)[0].detach().numpy()
    np.testing.assert_allclose(ours, oracle, atol=1e-5)
    lname, lmaps = filters.learned_maps(ck.model, x)
    assert lname == name and np.allclose(lmaps, oracle, atol=1e-5)
    # Without the bias, each map is shifted by a constant: its min-max picture is the same.
    no_bias = filters.snapshot_maps(ck.model, snaps[-1], x)
    np.testing.assert_allclose(no_bias + conv.bias.detach().numpy()[:, None, None], oracle, atol=1e-5)


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10"])
def test_front_end_maps_are_twice_opencv_on_the_normalised_image(name, request):
    data = request.getfixturevalue(name)
    model = build_model("engineered", data.shape, 10)
    x = data.normalize(data.test_x[3:4])  # (x / 255 - 0.5) / 0.5 = 2 * image - 1
    maps = filters.front_end_maps(model, x)
    assert maps.shape == (5, *data.shape[1:])
    names, cv = filters.engineered_maps(data.test_x[3], ("sobel_x", "sobel_y", "sobel_mag", "laplacian"))
    gray = cv2.cvtColor(filters.image_float(data.test_x[3]), cv2.COLOR_RGB2GRAY) if data.shape[0] == 3 \
        else filters.image_float(data.test_x[3])
    np.testing.assert_allclose(maps[0], 2 * gray - 1, atol=1e-5)
    np.testing.assert_allclose(maps[1:], 2 * cv, atol=1e-4)


def test_snapshot_maps_run_the_layers_before_the_first_conv(fashion_mnist):
    model = build_model("vgg16", (1, 28, 28), 10).eval()  # resizes 28x28 to 32x32 before conv1
    x = fashion_mnist.normalize(fashion_mnist.test_x[:1])
    conv = model.conv1
    ours = filters.snapshot_maps(model, conv.weight.detach(), x, conv.bias.detach())
    assert ours.shape == (64, 32, 32)
    np.testing.assert_allclose(ours, feature_maps(model, x, ["conv1"])["conv1"][0].numpy(), atol=1e-5)


def test_evolution_counts_close_filters_per_epoch_like_matching_each_snapshot_alone(short_run):
    matches, mean_best, n_close = filters.evolution(short_run.meta, 0.5)
    snaps = filters.snapshots_of(short_run.meta)
    for e in range(len(snaps)):  # oracle: the single-set rule, epoch by epoch
        alone = filters.closest_engineered(snaps[e])
        assert n_close[e] == sum(abs(m["similarity"]) > 0.5 for m in alone)
        assert mean_best[e] == pytest.approx(np.mean([abs(m["similarity"]) for m in alone]), abs=1e-6)
    assert len(matches) == 3
    assert filters.evolution({**short_run.meta, "filter_snapshots": None}) is None
    text = filters.chance_sentence(mean_best, n_close, 32, 5, 0.5)
    assert text.startswith(f"Chance level: the same comparison on this layer's random initial filters (epoch 0) "
                           f"gives {n_close[0]} of 32 within |cos| > 0.5 and a mean best |cos| of {mean_best[0]:.3f}; "
                           f"after epoch 2: {n_close[-1]} and {mean_best[-1]:.3f}.")
    assert text.endswith(f"With only 25 weights per filter, a random filter is often fairly close to one of "
                         f"{len(engineered_kernels(5))} kernels.")


def test_filter_labels_and_the_short_table_name_kernels_without_the_3x3_size():
    k = engineered_kernels(3)
    weights = torch.from_numpy(np.stack([k["sobel_x"], -k["laplacian"]]))[:, None]  # (2, 1, 3, 3)
    matches = filters.closest_engineered(weights)
    assert filters.filter_labels(matches) == ["0: Sobel x<br>+1.00", "1: Laplacian<br>-1.00"]
    rows = filters.match_table(matches, short=True)
    assert [r["closest kernel"] for r in rows] == ["Sobel x", "Laplacian"]
    assert [r["closest kernel"] for r in filters.match_table(matches)] == ["sobel_x", "laplacian"]
    assert filters.short_label("sobel5_x") == "Sobel x (5)" and filters.short_label("unknown") == "unknown"


def test_only_runs_with_a_learned_first_conv_are_offered_and_the_default_is_the_shipped_max_net():
    from cnnviz import shipped
    from cnnviz.checkpoints import read_record

    rows = {}
    for run in shipped.runs_of_group("baselines", "fashion-mnist") + shipped.runs_of_group("downsampling",
                                                                                           "fashion-mnist"):
        if run.path.exists():
            rows[run.filename] = read_record(run.path).row()
    if "fashion-mnist-downsample_compare-max.pt" not in rows:
        pytest.skip("the shipped Fashion-MNIST checkpoints are not there")
    rows["gone.pt"] = {**rows["fashion-mnist-downsample_compare-max.pt"], "arch": "no_such_net"}
    kept = filters.with_first_conv(rows, (1, 28, 28))
    # oracle: the rebuilt net has a conv layer (the MLP and the fixed front ends have none)
    expected = {i for i, r in rows.items() if r["arch"] != "no_such_net"
                and first_conv(build_model(r["arch"], (1, 28, 28), 10, r["downsample"] or None)) is not None}
    assert set(kept) == expected and "fashion-mnist-mlp.pt" not in kept and "gone.pt" not in kept
    assert filters.default_run(kept, "fashion-mnist") == "fashion-mnist-downsample_compare-max.pt"
    no_max = {i: r for i, r in kept.items() if r["arch"] != "downsample_compare"}
    assert filters.default_run(no_max, "fashion-mnist") == "fashion-mnist-learned_conv-max.pt"
    assert filters.default_run({"yours/a.pt": {}}, "fashion-mnist") == "yours/a.pt"
    assert filters.default_run({}, "fashion-mnist") is None


# ---- edge detectors, orientation-free ---------------------------------------------------------

@pytest.mark.parametrize("k", [3, 5, 7])
def test_every_rotation_of_a_derivative_kernel_is_a_full_edge_detector_at_its_angle(k):
    dx, dy, lap = filters.derivative_basis(k)
    assert float((dx * dy).sum()) == pytest.approx(0.0)  # orthogonal: the two shares add up
    for theta in (0, 30, 45, 90, 135):
        # a derivative along direction theta (y up), i.e. cos * d/dx - sin * d/dy in image rows (y down)
        t = np.radians(theta)
        s = filters.filter_shapes(np.stack([np.cos(t) * dx - np.sin(t) * dy]))
        assert s.edge[0] == pytest.approx(1.0) and s.blob[0] == pytest.approx(0.0, abs=1e-9)
        assert s.angle[0] == pytest.approx((theta + 90) % 180)  # the edge runs across the gradient
        assert s.describe(0) == f"an edge detector at {(theta + 90) % 180}°"
    blob = filters.filter_shapes(lap[None])
    assert blob.blob[0] == pytest.approx(1.0) and blob.edge[0] == pytest.approx(0.0, abs=1e-9)
    assert blob.describe(0) == "a blob (Laplacian) detector"


@pytest.mark.parametrize("k", [3, 5])
def test_random_filters_put_two_of_k2_minus_1_dimensions_of_energy_in_the_edge_span(k):
    rnd = filters.random_shapes(k)
    assert rnd.edge.mean() == pytest.approx(2 / (k * k - 1), rel=0.05)  # isotropic noise, mean removed
    flat = filters.filter_shapes(np.ones((1, k, k)))  # a constant filter: no edge, no blob, no error
    assert flat.edge[0] == 0 and flat.blob[0] == 0


def test_the_engineered_page_opens_on_the_shipped_net_with_the_most_edge_detectors():
    """The page's default is measured, not assumed: lenet_fc has the largest share of edge detectors among
    every shipped seed-0 net with a learned first layer, on both datasets."""
    from cnnviz import shipped

    for dataset in ("fashion-mnist", "cifar10"):
        share = {}
        for run in shipped.shipped_runs():
            if run.config.dataset != dataset or run.config.seed or not run.path.exists():
                continue
            found = first_conv(load_checkpoint(run.path).model)
            if found is not None:
                s = filters.filter_shapes(found[1].weight)
                share[run.filename] = s.edge_detectors / len(s)
        assert share, f"no shipped net with a conv layer on {dataset}"
        default = filters.default_run(share, dataset)
        assert share[default] == max(share.values()), (dataset, default, sorted(share.items(), key=lambda kv: -kv[1])[:3])
        assert share[default] > 2 * filters.random_shapes(3).edge_detectors / len(filters.random_shapes(3))
