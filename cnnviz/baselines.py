"""The lecture's comparison "engineering features vs CNN features": which baseline runs can be ranked, and
the sentence, computed from their run records, that says which input representation wins.

The group and the words for each member (display name, what it sees, how a sentence names it) are
registered with the architectures (`models.list_baselines`, `ArchSpec`).
"""
from __future__ import annotations

from .models import MLP_HIDDEN, get_arch
from .record import RunRecord
from .train import LR_PRESETS

# Quoted from the lecture's slide (CIFAR-10, "case 2"): "Test Accuracy from MLP: ~53%".
LECTURE_MLP_CIFAR10_ACC = 0.53


def comparable(records: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """The runs the comparison can rank (a finished epoch, trainable parameters recorded), and one
    sentence for each it cannot."""
    kept, problems = [], []
    for r in records:
        if not r.history:
            problems.append(f"the {r.arch} run has no finished epoch")
        elif r.trainable_params is None:
            problems.append(f"the {r.arch} run does not record its trainable parameters")
        else:
            kept.append(r)
    return kept, problems


def table_rows(results: list[RunRecord]) -> list[dict]:
    """One row per ranked run: its net's name, final test accuracy, trainable parameters, training seconds per
    epoch, what its head sees, epochs and layers (the registry's description)."""
    return [{"model": get_arch(r.arch).label, "final test accuracy": r.final_test_acc,
             "trainable parameters": r.trainable_params, "seconds per epoch": r.seconds_per_epoch,
             "what it sees": get_arch(r.arch).sees, "epochs": r.epochs, "layers": get_arch(r.arch).description}
            for r in results]


def mlp_vs_lecture(mlp: RunRecord) -> tuple[str, str]:
    """(the gap to the lecture's MLP result in points, how our MLP and its training differ from the lecture's)."""
    delta = (f"{100 * (mlp.final_test_acc - LECTURE_MLP_CIFAR10_ACC):+.1f} points vs the lecture's "
             f"\"Test Accuracy from MLP: ~{LECTURE_MLP_CIFAR10_ACC:.0%}\"")
    how = (f"Ours: FC {'-'.join(str(u) for u in MLP_HIDDEN)}-{mlp.num_classes} on raw pixels, {mlp.epochs} epochs "
           f"of {mlp.config.optimizer} at lr {mlp.config.lr:g}; the lecture's code trains with Adam at lr "
           f"{LR_PRESETS['lecture (1e-5)']:g}.")
    return delta, how


def format_count(n: int) -> str:
    """61706 -> "62k", 1_707_274 -> "1.7M", 850 -> "850"."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _and(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _points(a: float, b: float) -> str:
    return f"{abs(a - b) * 100:.1f} points"


def _called(arch: str) -> str:
    """How a sentence names the net: "the MLP" (an unregistered name is left as it is)."""
    try:
        return get_arch(arch).called
    except ValueError:
        return arch


def _fronts_clause(fronts: list[RunRecord]) -> str:
    """"the engineered front end (88.1%) beats raw pixels by 1.2 points and ties with ...": the front
    ends that feed the same head, best first (`fronts` sorted by accuracy, at least two)."""
    top, rest = fronts[0], fronts[1:]
    front = lambda r: get_arch(r.arch).front  # noqa: E731
    behind = [(r, top.final_test_acc - r.final_test_acc) for r in rest]
    wins = [f"{front(r)} by {_points(top.final_test_acc, r.final_test_acc)}" for r, gap in behind if gap >= 0.0005]
    ties = [front(r) for r, gap in behind if gap < 0.0005]
    plural = top.arch == "mlp"  # "raw pixels beat ...", "raw pixels tie with ..."
    clause = f"{front(top)} ({top.final_test_acc:.1%})"
    if wins:
        clause += (" beat " if plural else " beats ") + _and(wins)
    if ties:
        clause += (" and" if wins else "") + (" tie with " if plural else " ties with ") + _and(ties)
    return clause


def _front_ranked(arch: str) -> bool:
    try:
        return get_arch(arch).front is not None
    except ValueError:
        return False


def winner_sentence(results: list[RunRecord], dataset_label: str) -> str:
    """One sentence, computed from the numbers, saying which input representation wins and by how much.

    First the ways of feeding the same kind of head (the registered front ends: raw pixels, fixed Sobel
    or Scharr channels, a learned conv) are ranked; then the best run overall is named (or, when it is
    that winning front end, confirmed) with its trainable parameters against the MLP's, and LeNet-5's
    result is added when LeNet-5 is not the best. Differences under 0.05 points (invisible at one
    decimal) are ties.
    """
    by = {r.arch: r for r in results}
    if not by:
        return f"No run of the comparison group has been trained on {dataset_label} yet."
    best = max(by.values(), key=lambda r: r.final_test_acc)
    if len(by) == 1:
        return (f"On {dataset_label}, only {_called(best.arch)} has been trained so far: {best.final_test_acc:.1%} "
                f"with {format_count(best.trainable_params)} trainable parameters.")
    clauses = []
    fronts = sorted((r for r in by.values() if _front_ranked(r.arch)), key=lambda r: -r.final_test_acc)
    if len(fronts) >= 2:
        clauses.append(_fronts_clause(fronts))
    mlp, lenet = by.get("mlp"), by.get("lenet5")
    if len(fronts) >= 2 and best is fronts[0]:  # already named: no second sentence about the same run
        overall = f"it is the best of all {len(by)}, with {format_count(best.trainable_params)} trainable parameters"
    else:
        overall = (f"{_called(best.arch)} is best at {best.final_test_acc:.1%} with "
                   f"{format_count(best.trainable_params)} trainable parameters")
    if mlp is not None and best.arch != "mlp":
        rel = "fewer than" if best.trainable_params < mlp.trainable_params else "more than"
        overall += f", {rel} the MLP's {format_count(mlp.trainable_params)}"
    if lenet is not None and best.arch != "lenet5":
        overall += f" (LeNet-5: {lenet.final_test_acc:.1%} with {format_count(lenet.trainable_params)})"
    clauses.append(overall)
    return f"On {dataset_label}, " + "; ".join(clauses) + "."
