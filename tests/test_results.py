"""Run comparison maths: run records read from checkpoint metadata, grouping by everything but the
seed, per-epoch statistics against numpy, the comparison table and the sentence that weighs a gap
against the seed spread."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cnnviz import results
from cnnviz.images import gallery_images
from cnnviz.record import RunRecord


def meta(arch="downsample_compare", downsample="max", dataset="fashion-mnist", seed=0, test_acc=(0.8, 0.85, 0.87),
         lr=1e-3, optimizer="adam", batch_size=1024, limit_train=None, params=1000, complete=True, file=""):
    """The run record of a checkpoint's metadata as `make_meta` writes it (only the fields the comparison reads)."""
    history = [{"epoch": i + 1, "train_loss": 1.0 / (i + 1) + seed, "train_acc": a - 0.01, "test_loss": 0.5 + i,
                "test_acc": a, "seconds": 2.0 + i} for i, a in enumerate(test_acc)]
    return RunRecord.from_meta({"arch": arch, "downsample": downsample, "dataset": {"name": dataset}, "history": history,
            "params": params, "complete": complete,
            "train": {"seed": seed, "lr": lr, "optimizer": optimizer, "batch_size": batch_size,
                      "limit_train": limit_train, "epochs": len(test_acc), "device": "cpu"}}, file or None)


def test_runs_that_differ_only_by_seed_form_one_group_labelled_without_the_seed():
    metas = [meta(seed=0), meta(seed=1), meta(downsample="avg"), meta(seed=2)]
    groups = results.seed_groups(metas)
    assert [g.n for g in groups] == [3, 1]
    assert groups[0].seeds == [0, 1, 2] and groups[0].members == (0, 1, 3)
    assert groups[0].label == "downsample_compare · max · fashion-mnist"
    assert "seed 1" in metas[1].label and "seed" not in groups[0].label


@pytest.mark.parametrize("change", [dict(lr=1e-5), dict(optimizer="sgd"), dict(batch_size=64),
                                    dict(limit_train=2048), dict(test_acc=(0.8,)), dict(dataset="cifar10"),
                                    dict(arch="lenet5"), dict(downsample="stride")])
def test_any_difference_but_the_seed_makes_another_group(change):
    groups = results.seed_groups([meta(seed=0), meta(seed=1, **change)])
    assert len(groups) == 2
    assert groups[0].label != groups[1].label  # a clash of names is resolved by the differing setting


def test_groups_that_would_share_a_name_are_told_apart_by_the_differing_setting():
    groups = results.seed_groups([meta(lr=1e-3), meta(lr=1e-5), meta(lr=1e-5, seed=4, test_acc=(0.5,))])
    assert [g.label.split(" · ")[-1] for g in groups] == ["lr 0.001, 3 epochs", "lr 1e-05, 3 epochs",
                                                          "lr 1e-05, 1 epoch"]


def test_runs_without_any_epoch_are_left_out_of_the_groups():
    assert results.seed_groups([meta(test_acc=()), meta()])[0].members == (1,)


def test_group_curve_statistics_match_numpy_per_epoch():
    rng = np.random.default_rng(0)
    accs = rng.uniform(0.5, 0.9, size=(4, 6))
    groups = results.seed_groups([meta(seed=s, test_acc=tuple(a)) for s, a in enumerate(accs)])
    c = groups[0].curve("test_acc")
    np.testing.assert_array_equal(c.epochs, np.arange(1, 7))
    np.testing.assert_allclose(c.mean, accs.mean(0))
    np.testing.assert_allclose(c.lo, accs.min(0))
    np.testing.assert_allclose(c.hi, accs.max(0))
    np.testing.assert_allclose(c.std, accs.std(0, ddof=1))
    train_loss = groups[0].curve("train_loss")  # another metric: 1/epoch + seed
    np.testing.assert_allclose(train_loss.mean, 1.0 / np.arange(1, 7) + 1.5)


def test_group_final_accuracy_statistics_match_numpy():
    finals = np.array([0.91, 0.905, 0.899])
    g = results.seed_groups([meta(seed=s, test_acc=(0.5, f)) for s, f in enumerate(finals)])[0]
    assert g.mean == pytest.approx(finals.mean())
    assert g.std == pytest.approx(finals.std(ddof=1))
    assert g.spread == pytest.approx(finals.max() - finals.min())
    row = results.group_table([g]).iloc[0]
    assert row["runs"] == 3 and row["seeds"] == "0, 1, 2"
    assert row["mean ± std"] == f"{100 * finals.mean():.2f} ± {100 * finals.std(ddof=1):.2f} %"


def test_a_single_run_has_no_spread():
    g = results.seed_groups([meta()])[0]
    assert math.isnan(g.std) and g.spread == 0
    assert np.isnan(g.curve().std).all()
    assert "one run" in results.group_table([g]).iloc[0]["mean ± std"]


def test_sentence_says_a_gap_larger_than_the_seed_spread_is_larger():
    groups = results.seed_groups([meta(seed=s, test_acc=(a,)) for s, a in enumerate((0.90, 0.91))]
                                 + [meta(downsample="avg", seed=s, test_acc=(a,)) for s, a in enumerate((0.85, 0.86))])
    text = results.compare_sentence(groups)
    assert text.startswith("downsample_compare · max · fashion-mnist (90.50 %, mean of 2 seeds) is ahead of "
                           "downsample_compare · avg · fashion-mnist (85.50 %")
    assert "by 5.00 points" in text and "1.00 points" in text and "larger than what the seed alone does" in text


def test_sentence_says_a_gap_within_the_seed_spread_is_noise():
    groups = results.seed_groups([meta(seed=s, test_acc=(a,)) for s, a in enumerate((0.90, 0.93))]
                                 + [meta(downsample="avg", seed=s, test_acc=(a,)) for s, a in enumerate((0.89, 0.92))])
    text = results.compare_sentence(groups)
    assert "by 1.00 points" in text and "3.00 points" in text and "within seed-to-seed noise" in text


def test_sentence_ranks_groups_by_mean_and_names_a_single_seed():
    groups = results.seed_groups([meta(downsample="avg", test_acc=(0.7,)), meta(test_acc=(0.8,)),
                                  meta(downsample="stride", test_acc=(0.75,))])
    text = results.compare_sentence(groups)
    assert text.startswith("downsample_compare · max")
    assert "ahead of downsample_compare · stride" in text and "single seed" in text
    assert results.compare_sentence(groups[:1]).startswith("Select runs of at least two")


def test_run_table_has_one_row_per_run_with_final_and_best_accuracy():
    metas = [meta(test_acc=(0.8, 0.9, 0.85), file="a.pt"), meta(seed=1, complete=False, test_acc=(0.7,), file="b.pt")]
    df = results.run_table(metas, origins=["shipped", "yours"])
    assert list(df["file"]) == ["a.pt", "b.pt"]
    assert df.loc[0, "test_acc"] == 0.85 and df.loc[0, "best_test_acc"] == 0.9 and df.loc[0, "best_epoch"] == 2
    assert df.loc[0, "seconds_per_epoch"] == pytest.approx(3.0)  # (2 + 3 + 4) / 3
    assert list(df["epochs"]) == [3, 1] and list(df["complete"]) == [True, False]
    assert list(df["origin"]) == ["shipped", "yours"]


def test_test_images_are_gray_or_hwc_uint8(fashion_mnist):
    imgs = gallery_images(fashion_mnist, [0, 5])
    assert [i.shape for i in imgs] == [(28, 28), (28, 28)] and imgs[0].dtype == np.uint8
    np.testing.assert_array_equal(imgs[1], fashion_mnist.test_x[5, 0].numpy())


# ---- legends of the compare charts ------------------------------------------------------------------

def test_split_labels_moves_what_all_runs_share_into_one_subtitle():
    from cnnviz.figures import split_labels

    shared, names = split_labels(["downsample_compare · max · fashion-mnist", "downsample_compare · avg · fashion-mnist"])
    assert shared == "downsample_compare · fashion-mnist" and names == ["max", "avg"]
    assert split_labels(["mlp · cifar10", "lenet5 · max · cifar10"]) == ("cifar10", ["mlp", "lenet5 · max"])
    assert split_labels(["lenet5 · max · cifar10"]) == ("", ["lenet5 · max · cifar10"])  # one run: as it is
    assert split_labels(["a · b", "a · b"]) == ("", ["a · b", "a · b"])  # nothing would tell them apart


def test_group_curves_figure_draws_a_band_per_seed_group_and_short_legend_names():
    from cnnviz.figures import group_curves_figure

    curve = {"epochs": [1, 2], "mean": [0.5, 0.6], "lo": [0.4, 0.55], "hi": [0.6, 0.65]}
    groups = [{"label": f"dc · {m} · fashion-mnist", "color": "#1f77b4", "n": n, "curves": {"test_acc": curve}}
              for m, n in (("max", 3), ("avg", 1))]
    fig = group_curves_figure(groups, ("test_acc",), title="Accuracy")
    fills = [t for t in fig.data if t.fill]
    assert len(fills) == 1  # only the group of 3 seeds has a band
    assert [t.name for t in fig.data if not t.fill] == ["max (test, 3 seeds)", "avg (test)"]
    assert fig.layout.title.subtitle.text.startswith("dc · fashion-mnist")


def _shipped_records():
    from cnnviz import shipped
    from cnnviz.checkpoints import read_record

    runs = [r for r in shipped.runs_of_group("baselines", "fashion-mnist") if r.path.exists()]
    if not runs:
        pytest.skip("no shipped baseline checkpoint")
    return [read_record(r.path) for r in runs]


def test_the_exported_table_names_each_run_and_where_it_came_from():
    from cnnviz.checkpoints import read_meta

    records = _shipped_records()
    labels = [f"run {i}" for i in range(len(records))]
    table = results.export_table(records, ["shipped"] * len(records), labels, [r.file for r in records])
    assert list(table.columns) == results.EXPORT_COLUMNS
    assert table["run"].tolist() == labels and set(table["source"]) == {"shipped"}
    for (_, row), rec in zip(table.iterrows(), records):
        hist = read_meta(rec.path)["history"]  # oracle: the file's own history
        assert row["final_test_acc"] == hist[-1]["test_acc"]
        assert row["best_test_acc"] == max(h["test_acc"] for h in hist)
        assert row["file"] == rec.path.name
    ungrouped = results.single_groups(records, labels)
    assert [g.label for g in ungrouped] == labels and all(g.n == 1 for g in ungrouped)


def test_cost_points_put_final_accuracy_against_parameters_and_counted_multiply_adds():
    from cnnviz import costs
    from cnnviz.models import build_model

    records = _shipped_records()
    labels = [r.file for r in records]
    by_params, by_macs = costs.cost_points(records, labels)
    assert [p["label"] for p in by_params] == labels
    for p, m, rec in zip(by_params, by_macs, records):
        model = build_model(rec.arch, rec.in_shape, rec.num_classes, rec.downsample)
        assert p["x"] == sum(t.numel() for t in model.parameters())  # oracle: the rebuilt net
        assert m["x"] == costs.macs(model, rec.in_shape) and p["y"] == m["y"] == rec.final_test_acc


def test_groups_are_compared_per_dataset_and_only_where_there_are_two():
    from cnnviz import shipped
    from cnnviz.checkpoints import read_record

    runs = [r for r in shipped.runs_of_group("downsampling", None) if r.path.exists()]
    records = [read_record(r.path) for r in runs]
    groups = results.seed_groups(records)
    out = dict(results.sentences_by_dataset(groups))
    for ds in {g.first.dataset_name for g in groups}:
        on_ds = [g for g in groups if g.first.dataset_name == ds]
        assert out.get(ds) == (results.compare_sentence(on_ds) if len(on_ds) > 1 else None)
    one = [g for g in groups if g.first.dataset_name == "cifar10"][:1]
    assert results.sentences_by_dataset(one) == []


def test_run_labels_name_what_tells_runs_of_one_net_apart_and_nothing_else():
    import dataclasses

    from cnnviz.config import RunConfig
    from cnnviz.record import RunRecord
    from cnnviz.results import run_labels

    history = ({"epoch": 1, "test_acc": 0.5},)
    cfg = RunConfig(arch="lenet5", downsample="max", precision="fp32")
    make = lambda **c: RunRecord(config=dataclasses.replace(cfg, **c), history=history, dataset={"name": "fashion-mnist"},
                                 in_shape=(1, 28, 28), num_classes=10, complete=True)
    runs = [make(), make(lr=1e-5), make(seed=1), make(arch="mlp", downsample=None)]
    assert run_labels(runs) == ["lenet5 · max · fashion-mnist · lr 0.001", "lenet5 · max · fashion-mnist · lr 1e-05",
                                "lenet5 · max · fashion-mnist · seed 1 · lr 0.001", "mlp · fashion-mnist"]
    assert run_labels([make(), make(precision="bf16")])[1] == "lenet5 · max · fashion-mnist · precision bf16"


def test_expected_seconds_scale_the_most_similar_finished_run_by_images_and_epochs():
    import dataclasses

    from cnnviz.config import RunConfig
    from cnnviz.record import RunRecord
    from cnnviz.results import duration_text, expected_seconds

    row = {"epoch": 1, "test_acc": 0.5, "seconds": 60.0, "images_per_second": 1000.0, "eval_seconds": 5.0}
    make = lambda **c: RunRecord(config=dataclasses.replace(RunConfig(arch="lenet5", downsample="max", precision="fp32"), **c),
                                 history=(row, row), dataset={"name": "fashion-mnist", "train_size": 60000},
                                 in_shape=(1, 28, 28), num_classes=10, complete=True)
    avg, maxed = make(downsample="avg"), make()
    cfg = RunConfig(arch="lenet5", downsample="max", epochs=3, limit_train=30000, precision="fp32")
    est = expected_seconds(cfg, [avg, maxed])
    assert est.basis is maxed  # the same downsampling first
    images = 30000 // 1024 * 1024  # drop_last: whole batches of 1024 only
    assert est.seconds == pytest.approx(3 * (images * 60.0 / 60000 + 5.0))  # about half the images, three epochs
    assert expected_seconds(RunConfig(arch="mlp"), [avg]) is None
    assert [duration_text(s) for s in (40, 720, 9000)] == ["about 40 s", "about 12 min", "about 2.5 h"]
