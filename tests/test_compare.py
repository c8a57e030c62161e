"""cnnviz.compare: engineered vs learned features, filter snapshots, and the baseline comparison."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnviz import compare, figures
from cnnviz.checkpoints import load_checkpoint
from cnnviz.engineered import engineered_kernels
from cnnviz.features import feature_maps
from cnnviz.models import build_model, first_conv
from cnnviz.config import RunConfig
from cnnviz.record import RunRecord
from cnnviz.runs import run_training


# ---- the winner sentence ----------------------------------------------------------------------

def _r(arch, acc, params, secs=1.0, epochs=10):
    """The run record of a finished baseline run with `acc` after its last epoch."""
    history = [{"epoch": e, "test_acc": acc, "seconds": secs} for e in range(1, epochs + 1)]
    return RunRecord.from_meta({"arch": arch, "dataset": {"name": "fashion-mnist"}, "history": history,
                                "trainable_params": params, "complete": True})


def test_winner_sentence_names_the_best_front_end_and_margins_from_the_numbers():
    results = [_r("mlp", 0.519, 1_707_274), _r("engineered", 0.571, 402_890),
               _r("learned_conv", 0.612, 402_975), _r("lenet5", 0.632, 62_006)]
    assert compare.winner_sentence(results, "CIFAR-10") == (
        "On CIFAR-10, the learned conv front end (61.2%) beats the engineered front end by 4.1 points and "
        "raw pixels by 9.3 points; LeNet-5 is best at 63.2% with 62k trainable parameters, fewer than the "
        "MLP's 1.7M.")


def test_winner_sentence_follows_the_numbers_when_engineered_wins():
    results = [_r("engineered", 0.90, 100_000), _r("learned_conv", 0.85, 100_045), _r("mlp", 0.80, 200_000)]
    text = compare.winner_sentence(results, "Fashion-MNIST")
    assert text.startswith("On Fashion-MNIST, the engineered front end (90.0%) beats the learned conv "
                           "front end by 5.0 points and raw pixels by 10.0 points;")
    assert text.endswith("; it is the best of all 3, with 100k trainable parameters, fewer than the MLP's 200k.")


def test_winner_sentence_says_tie_and_more_parameters_when_so():
    results = [_r("mlp", 0.70, 1_000), _r("engineered", 0.70, 5_000), _r("lenet5", 0.75, 62_006)]
    text = compare.winner_sentence(results, "X")
    assert "tie with the engineered front end" in text or "ties with raw pixels" in text
    assert "LeNet-5 is best at 75.0% with 62k trainable parameters, more than the MLP's 1.0k" in text


def test_winner_sentence_gives_lenet5_when_a_front_end_wins_overall():
    results = [_r("mlp", 0.5514, 1_707_274), _r("engineered", 0.5413, 165_258),
               _r("learned_conv", 0.5694, 165_398), _r("lenet5", 0.5452, 83_126)]
    assert compare.winner_sentence(results, "CIFAR-10") == (
        "On CIFAR-10, the learned conv front end (56.9%) beats raw pixels by 1.8 points and the engineered front end "
        "by 2.8 points; it is the best of all 4, with 165k trainable parameters, fewer than the MLP's 1.7M "
        "(LeNet-5: 54.5% with 83k).")


def test_winner_sentence_ranks_the_scharr_front_end_with_the_others():
    results = [_r("mlp", 0.80, 200_000), _r("engineered", 0.86, 100_000), _r("engineered_scharr", 0.87, 100_000),
               _r("learned_conv", 0.88, 100_045)]
    text = compare.winner_sentence(results, "Fashion-MNIST")
    assert text.startswith("On Fashion-MNIST, the learned conv front end (88.0%) beats the Scharr front end by "
                           "1.0 points, the engineered front end by 2.0 points and raw pixels by 8.0 points;")
    assert "it is the best of all 4" in text


def test_winner_sentence_with_one_or_no_run():
    assert compare.winner_sentence([], "CIFAR-10") == "No run of the comparison group has been trained on CIFAR-10 yet."
    assert compare.winner_sentence([_r("lenet5", 0.5, 62_006)], "CIFAR-10") == (
        "On CIFAR-10, only LeNet-5 has been trained so far: 50.0% with 62k trainable parameters.")


def test_a_run_record_gives_the_last_epoch_and_mean_seconds_and_unrankable_runs_are_named():
    meta = {"arch": "mlp", "trainable_params": 123, "dataset": {"name": "fashion-mnist"},
            "history": [{"test_acc": 0.5, "seconds": 2.0}, {"test_acc": 0.6, "seconds": 4.0}]}
    r = RunRecord.from_meta(meta)
    assert (r.final_test_acc, r.trainable_params, r.seconds_per_epoch, r.epochs) == (0.6, 123, 3.0, 2)
    empty = RunRecord.from_meta({**meta, "history": []})
    unknown = RunRecord.from_meta({k: v for k, v in meta.items() if k != "trainable_params"})
    kept, problems = compare.comparable([r, empty, unknown])
    assert kept == [r]
    assert problems == ["the mlp run has no finished epoch", "the mlp run does not record its trainable parameters"]


def test_format_count():
    assert [compare.format_count(n) for n in (850, 1_234, 61_706, 1_707_274)] == ["850", "1.2k", "62k", "1.7M"]


# ---- engineered maps on a real image -----------------------------------------------------------

def test_engineered_maps_are_opencv_on_the_gray_float_image(cifar10):
    x = cifar10.test_x[7]  # (3, 32, 32) uint8
    names, maps = compare.engineered_maps(x)
    rgb = x.numpy().transpose(1, 2, 0).astype(np.float32) / 255
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert maps.shape == (len(names), 32, 32)
    np.testing.assert_allclose(maps[names.index("sobel_x")], cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), atol=1e-6)
    np.testing.assert_allclose(maps[names.index("sobel5_y")], cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=5), atol=1e-5)
    np.testing.assert_allclose(maps[names.index("laplacian")], cv2.Laplacian(gray, cv2.CV_32F), atol=1e-6)


def test_engineered_maps_of_a_grayscale_image_use_it_as_is(fashion_mnist):
    x = fashion_mnist.test_x[0]
    names, maps = compare.engineered_maps(x, ("scharr_x",))
    g = x[0].numpy().astype(np.float32) / 255
    np.testing.assert_allclose(maps[0], cv2.Scharr(g, cv2.CV_32F, 1, 0), atol=1e-6)


def test_learned_maps_need_a_conv_layer():
    with pytest.raises(ValueError, match="no learned conv"):
        compare.learned_maps(build_model("mlp"), torch.zeros(1, 1, 28, 28))
    assert compare.arch_has_first_conv("learned_conv") and not compare.arch_has_first_conv("engineered")


# ---- filters vs kernels -------------------------------------------------------------------------

def test_similarity_sentence_counts_filters_close_to_each_family(seeded):
    k = engineered_kernels(3)
    filters = torch.stack([torch.from_numpy(-2 * k["sobel_x"]), torch.from_numpy(k["laplacian"]),
                           torch.from_numpy(k["scharr_y"]), torch.randn(3, 3, generator=seeded)])[:, None]
    matches = compare.closest_engineered(filters)
    text = compare.similarity_sentence(matches, 0.8)
    # Scharr y and Sobel y are cos 0.98 apart, so the Scharr filter may be matched to either family.
    assert text.startswith("3 of 4 filters are within |cos| > 0.8 of a Sobel/Scharr/Laplacian kernel")
    assert "1 Laplacian" in text
    rows = compare.match_table(matches)
    assert rows[0]["closest kernel"] == "sobel_x" and rows[0]["cosine"] == pytest.approx(-1.0)
    assert rows[0]["|cosine|"] == pytest.approx(1.0)


def test_similarity_sentence_with_no_close_filter():
    filters = torch.zeros(2, 1, 3, 3)
    filters[:, 0, 1, 1] = 1.0  # a centre spike minus its mean: closest to the Laplacian, but not > 0.99
    text = compare.similarity_sentence(compare.closest_engineered(filters), 0.99)
    assert text.startswith("None of the 2 filters is within |cos| > 0.99")


def test_tile_signed_keeps_zero_and_sign():
    k = engineered_kernels(3)
    img = figures.tile(np.stack([k["sobel_x"], 3 * k["laplacian"]]), cols=2, scale="peak")
    assert img.shape == (3, 7) and np.isnan(img[:, 3]).all()
    np.testing.assert_allclose(img[:, :3], k["sobel_x"] / 2)
    np.testing.assert_allclose(img[:, 4:], k["laplacian"] / 4)


def test_matches_per_epoch_agree_with_closest_engineered(seeded):
    snaps = torch.randn(4, 16, 3, 5, 5, generator=seeded)
    snaps[2, 0] = torch.from_numpy(-engineered_kernels(5)["sobel5_y"])  # an exact (negated) match
    snaps[3, 1] = 0  # a dead filter: cosine 0 with everything
    fast = compare.matches_per_epoch(snaps)
    for e in range(4):
        slow = compare.closest_engineered(snaps[e])
        for a, b in zip(fast[e], slow):
            assert (a["filter"], a["kernel"]) == (b["filter"], b["kernel"])
            assert a["similarity"] == pytest.approx(b["similarity"], abs=1e-6)
            assert a["all"] == pytest.approx(b["all"], abs=1e-6)
    assert fast[2][0]["kernel"] == "sobel5_y" and fast[2][0]["similarity"] == pytest.approx(-1.0)
    assert fast[3][1]["similarity"] == 0.0


def test_mean_best_similarity_is_one_for_engineered_kernels_and_counts_close():
    k = engineered_kernels(3)
    snaps = torch.stack([torch.stack([torch.from_numpy(k["sobel_x"]), torch.from_numpy(k["laplacian"])])[:, None]] * 3)
    np.testing.assert_allclose(compare.mean_best_similarity(snaps), [1.0, 1.0, 1.0], atol=1e-6)
    assert compare.count_close(snaps).tolist() == [2, 2, 2]


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
    snaps = compare.snapshots_of(short_run.meta)
    assert snaps is not None and snaps.shape == (3, 32, 1, 5, 5)  # epochs + 1
    torch.manual_seed(0)
    init = first_conv(build_model("downsample_compare", (1, 28, 28), 10, "max"))[1].weight
    torch.testing.assert_close(snaps[0], init.detach().half().float())
    assert not torch.equal(snaps[0], snaps[-1])  # the filters did learn


def test_snapshot_maps_of_the_last_epoch_equal_the_layer_output(short_run, fashion_mnist):
    ck = short_run
    name, conv = first_conv(ck.model)
    snaps = compare.snapshots_of(ck.meta)
    x = fashion_mnist.normalize(fashion_mnist.test_x[:1])
    ours = compare.snapshot_maps(ck.model, snaps[-1], x, conv.bias.detach())
    np.testing.assert_allclose(ours, feature_maps(ck.model, x, [name])[name][0].numpy(), atol=1e-5)
    oracle = F.conv2d(x, conv.weight, conv.bias)[0].detach().numpy()
    np.testing.assert_allclose(ours, oracle, atol=1e-5)
    lname, lmaps = compare.learned_maps(ck.model, x)
    assert lname == name and np.allclose(lmaps, oracle, atol=1e-5)
    # Without the bias, each map is shifted by a constant: its min-max picture is the same.
    no_bias = compare.snapshot_maps(ck.model, snaps[-1], x)
    np.testing.assert_allclose(no_bias + conv.bias.detach().numpy()[:, None, None], oracle, atol=1e-5)


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10"])
def test_front_end_maps_are_twice_opencv_on_the_normalised_image(name, request):
    data = request.getfixturevalue(name)
    model = build_model("engineered", data.shape, 10)
    x = data.normalize(data.test_x[3:4])  # (x / 255 - 0.5) / 0.5 = 2 * image - 1
    maps = compare.front_end_maps(model, x)
    assert maps.shape == (5, *data.shape[1:])
    names, cv = compare.engineered_maps(data.test_x[3], ("sobel_x", "sobel_y", "sobel_mag", "laplacian"))
    gray = cv2.cvtColor(compare.image_float(data.test_x[3]), cv2.COLOR_RGB2GRAY) if data.shape[0] == 3 \
        else compare.image_float(data.test_x[3])
    np.testing.assert_allclose(maps[0], 2 * gray - 1, atol=1e-5)
    np.testing.assert_allclose(maps[1:], 2 * cv, atol=1e-4)


def test_snapshot_maps_run_the_layers_before_the_first_conv(fashion_mnist):
    model = build_model("vgg16", (1, 28, 28), 10).eval()  # resizes 28x28 to 32x32 before conv1
    x = fashion_mnist.normalize(fashion_mnist.test_x[:1])
    conv = model.conv1
    ours = compare.snapshot_maps(model, conv.weight.detach(), x, conv.bias.detach())
    assert ours.shape == (64, 32, 32)
    np.testing.assert_allclose(ours, feature_maps(model, x, ["conv1"])["conv1"][0].numpy(), atol=1e-5)
