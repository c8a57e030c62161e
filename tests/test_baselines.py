"""cnnviz.baselines: which baseline runs can be ranked, and the winner sentence computed from their records."""
from __future__ import annotations

import pytest

from cnnviz import baselines
from cnnviz.models import get_arch, list_baselines
from cnnviz.record import RunRecord


# ---- the winner sentence ----------------------------------------------------------------------

def _r(arch, acc, params, secs=1.0, epochs=10):
    """The run record of a finished baseline run with `acc` after its last epoch."""
    history = [{"epoch": e, "test_acc": acc, "seconds": secs} for e in range(1, epochs + 1)]
    return RunRecord.from_meta({"arch": arch, "dataset": {"name": "fashion-mnist"}, "history": history,
                                "trainable_params": params, "complete": True})


def test_winner_sentence_names_the_best_front_end_and_margins_from_the_numbers():
    results = [_r("mlp", 0.519, 1_707_274), _r("engineered", 0.571, 402_890),
               _r("learned_conv", 0.612, 402_975), _r("lenet5", 0.632, 62_006)]
    assert baselines.winner_sentence(results, "CIFAR-10") == (
        "On CIFAR-10, the learned conv front end (61.2%) beats the engineered front end by 4.1 points and "
        "raw pixels by 9.3 points; LeNet-5 is best at 63.2% with 62k trainable parameters, fewer than the "
        "MLP's 1.7M.")


def test_winner_sentence_follows_the_numbers_when_engineered_wins():
    results = [_r("engineered", 0.90, 100_000), _r("learned_conv", 0.85, 100_045), _r("mlp", 0.80, 200_000)]
    text = baselines.winner_sentence(results, "Fashion-MNIST")
    assert text.startswith("On Fashion-MNIST, the engineered front end (90.0%) beats the learned conv "
                           "front end by 5.0 points and raw pixels by 10.0 points;")
    assert text.endswith("; it is the best of all 3, with 100k trainable parameters, fewer than the MLP's 200k.")


def test_winner_sentence_says_tie_and_more_parameters_when_so():
    results = [_r("mlp", 0.70, 1_000), _r("engineered", 0.70, 5_000), _r("lenet5", 0.75, 62_006)]
    text = baselines.winner_sentence(results, "X")
    assert "tie with the engineered front end" in text or "ties with raw pixels" in text
    assert "LeNet-5 is best at 75.0% with 62k trainable parameters, more than the MLP's 1.0k" in text


def test_winner_sentence_gives_lenet5_when_a_front_end_wins_overall():
    results = [_r("mlp", 0.5514, 1_707_274), _r("engineered", 0.5413, 165_258),
               _r("learned_conv", 0.5694, 165_398), _r("lenet5", 0.5452, 83_126)]
    assert baselines.winner_sentence(results, "CIFAR-10") == (
        "On CIFAR-10, the learned conv front end (56.9%) beats raw pixels by 1.8 points and the engineered front end "
        "by 2.8 points; it is the best of all 4, with 165k trainable parameters, fewer than the MLP's 1.7M "
        "(LeNet-5: 54.5% with 83k).")


def test_winner_sentence_ranks_the_scharr_front_end_with_the_others():
    results = [_r("mlp", 0.80, 200_000), _r("engineered", 0.86, 100_000), _r("engineered_scharr", 0.87, 100_000),
               _r("learned_conv", 0.88, 100_045)]
    text = baselines.winner_sentence(results, "Fashion-MNIST")
    assert text.startswith("On Fashion-MNIST, the learned conv front end (88.0%) beats the Scharr front end by "
                           "1.0 points, the engineered front end by 2.0 points and raw pixels by 8.0 points;")
    assert "it is the best of all 4" in text


def test_winner_sentence_with_one_or_no_run():
    assert baselines.winner_sentence([], "CIFAR-10") == "No run of the comparison group has been trained on CIFAR-10 yet."
    assert baselines.winner_sentence([_r("lenet5", 0.5, 62_006)], "CIFAR-10") == (
        "On CIFAR-10, only LeNet-5 has been trained so far: 50.0% with 62k trainable parameters.")


def test_a_run_record_gives_the_last_epoch_and_mean_seconds_and_unrankable_runs_are_named():
    meta = {"arch": "mlp", "trainable_params": 123, "dataset": {"name": "fashion-mnist"},
            "history": [{"test_acc": 0.5, "seconds": 2.0}, {"test_acc": 0.6, "seconds": 4.0}]}
    r = RunRecord.from_meta(meta)
    assert (r.final_test_acc, r.trainable_params, r.seconds_per_epoch, r.epochs) == (0.6, 123, 3.0, 2)
    empty = RunRecord.from_meta({**meta, "history": []})
    unknown = RunRecord.from_meta({k: v for k, v in meta.items() if k != "trainable_params"})
    kept, problems = baselines.comparable([r, empty, unknown])
    assert kept == [r]
    assert problems == ["the mlp run has no finished epoch", "the mlp run does not record its trainable parameters"]


def test_format_count():
    assert [baselines.format_count(n) for n in (850, 1_234, 61_706, 1_707_274)] == ["850", "1.2k", "62k", "1.7M"]


def test_the_comparison_group_is_the_front_ends_then_lenet5_with_their_words():
    assert list_baselines() == ["mlp", "engineered", "engineered_scharr", "learned_conv", "lenet5"]
    assert [get_arch(a).label for a in list_baselines()] == [
        "MLP", "Engineered front end", "Engineered front end (Scharr)", "Learned 3x3 conv", "LeNet-5"]
    assert get_arch("mlp").sees == "raw pixels" and get_arch("learned_conv").sees == "a learned 3x3 conv (5 channels)"
    assert get_arch("lenet5").front is None and get_arch("engineered").called == "the engineered net"


def test_the_table_has_one_row_per_shipped_run_with_its_record_and_registry_numbers():
    from cnnviz import shipped
    from cnnviz.checkpoints import read_meta, read_record

    records = [read_record(r.path) for r in shipped.runs_of_group("baselines", "fashion-mnist") if r.path.exists()]
    if not records:
        pytest.skip("no shipped baseline checkpoint")
    kept, _ = baselines.comparable(records)
    rows = baselines.table_rows(kept)
    assert [r["model"] for r in rows] == [get_arch(r.arch).label for r in kept]
    for row, r in zip(rows, kept):
        # oracle: the checkpoint's own history and parameter count
        meta = read_meta(r.path)
        hist = meta["history"]
        assert row["final test accuracy"] == hist[-1]["test_acc"]
        assert row["epochs"] == len(hist)
        assert row["seconds per epoch"] == pytest.approx(sum(h["seconds"] for h in hist) / len(hist))
        assert row["trainable parameters"] == meta["trainable_params"]
        assert (row["what it sees"], row["layers"]) == (get_arch(r.arch).sees, get_arch(r.arch).description)


def test_our_mlp_is_set_against_the_lecture_s_53_percent():
    mlp = RunRecord.from_meta({"arch": "mlp", "dataset": {"name": "cifar10"}, "num_classes": 10,
                               "history": [{"test_acc": 0.5514}], "trainable_params": 1,
                               "train": {"optimizer": "adam", "lr": 0.001}})
    delta, how = baselines.mlp_vs_lecture(mlp)
    assert delta == "+2.1 points vs the lecture's \"Test Accuracy from MLP: ~53%\""
    assert how.startswith("Ours: FC ") and "-10 on raw pixels, 1 epochs of adam at lr 0.001" in how
    assert how.endswith("the lecture's code trains with Adam at lr 1e-05.")
