"""Every page's share link fits a slide and reopens the exact view; `present=1` hides the controls.

Per page: choices other than the defaults are set through the page's own widgets, the link the page shows in its
sidebar is taken, and a fresh AppTest opened on it must show every URL-backed choice the same. The length
counts a Community Cloud address in front (`https://<app>.streamlit.app/<page>`), as pasted into slides.
"""
from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import shipped
from pages.ui import catalog, nav, run_picker
from pages.ui.widgets import shareable

pytestmark = [pytest.mark.slow, pytest.mark.data]

SLIDE = 200  # characters a link may take on a slide (issue 15)
CLOUD = "https://cnnviz-class.streamlit.app/"  # a Cloud app's address, for the length
WAIT = 300  # a page's first run loads models and datasets on 2 busy cores
WIDGETS = ("selectbox", "number_input", "slider", "multiselect", "text_input", "toggle")


def open_page(url_path: str, params: dict[str, str] | None = None, *, entry=nav.APP) -> AppTest:
    at = AppTest.from_file(str(entry), default_timeout=WAIT)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page(nav.lesson(url_path).path).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def link_of(at: AppTest) -> tuple[str, dict[str, str]]:
    """The page's "Link to this view" and its parameters."""
    link = at.sidebar.code[0].value
    return link, dict(parse_qsl(urlsplit(link).query)) if link.startswith("?") else {}


def choices(at: AppTest) -> dict[str, object]:
    """Every keyed widget's value: what "the same view" means."""
    out = {}
    for kind in WIDGETS:
        for w in getattr(at, kind):
            if w.key and not w.key.startswith("$$"):
                out[f"{kind}:{w.key}"] = w.value
    return out


def set_and_run(at: AppTest, changes: list[tuple[str, str, object]]) -> AppTest:
    """Set (kind, key, value) on the page's widgets, then run once; a value None picks the widget's last option
    (only for a widget without format_func: AppTest sees the labels, not the values)."""
    for kind, key, value in changes:
        widget = getattr(at, kind)(key=key)
        if value is None:  # options are the labels shown; pick by position
            widget.select_index(len(widget.options) - 1)
        else:
            widget.set_value(value)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def assert_reopens(at: AppTest, url_path: str, must_say: tuple[str, ...]) -> AppTest:
    link, params = link_of(at)
    assert all(p in link + "&" for p in must_say), link
    assert len(CLOUD + url_path + link) <= SLIDE, f"{len(CLOUD + url_path + link)} characters: {link}"
    fresh = open_page(url_path, params)
    assert choices(fresh) == choices(at)
    assert link_of(fresh)[0] == link  # and it gives the same link back
    return fresh


# Per page and tab (`part`, None for the tab a page opens on; a tab runs, and draws its widgets, only while open),
# rounds of changes (a widget that appears only after an earlier choice comes in a later round) and what the link
# must then say.
CALCULATOR, ONE_BY_ONE = "Padding, stride and kernel size", "1x1 convolution instead of FC layers"
WORKED, SHIFT, LEARN = "The lecture's 4x4 example", "Is it shift-invariant?", "Watch the filters learn"
CASES = {
    ("architectures", None): ([[("selectbox", "arch", "lenet_fc"), ("selectbox", "dataset", "cifar10")],
                               [("selectbox", "downsample", "avg")]],
                              ("arch=lenet_fc", "dataset=cifar10", "downsample=avg")),
    ("architectures", CALCULATOR): ([[("number_input", "k", 5), ("number_input", "p", 2)]], ("k=5", "p=2")),
    ("architectures", ONE_BY_ONE): ([[("selectbox", "dataset", "cifar10"), ("number_input", "seed", 7)]],
                                    ("dataset=cifar10", "seed=7")),
    ("downsampling", None): ([[("selectbox", "dataset", "cifar10")],
                              [("selectbox", "class_cifar10", "automobile"), ("number_input", "index", 999),
                               ("selectbox", "source", "cifar10-downsample_compare-bilinear.pt"),
                               ("selectbox", "diff_a", "bilinear"), ("selectbox", "diff_b", "nearest")],
                              [("selectbox", "layer", None)]],
                             ("dataset=cifar10", "class=automobile", "index=999",
                              "source=downsample_compare-bilinear&", "diff=bilinear%2Cnearest")),
    ("downsampling", WORKED): ([[("selectbox", "we_pattern", "checkerboard")]], ("pattern=checkerboard",)),
    ("downsampling", SHIFT): ([[("selectbox", "dataset", "cifar10")], [("number_input", "k", 2),
                                                                        ("number_input", "n", 60)]],
                              ("dataset=cifar10", "k=2", "n=60")),
    ("engineered", LEARN): ([[("selectbox", "e_class_fashion-mnist", "Bag"), ("number_input", "e_index", 2)],
                             [("selectbox", "e_checkpoint", "fashion-mnist-downsample_compare-max-lr1e-5.pt")],
                             [("slider", "e_epoch", 1)]],
                            ("class=Bag", "index=2", "checkpoint=downsample_compare-max-lr1e-5&", "epoch=1")),
    ("inside", None): ([[("selectbox", "class_fashion-mnist", "Coat"), ("number_input", "index", 1),
                         ("selectbox", "net", "fashion-mnist-downsample_compare-blurmax-s2.pt")],
                        [("selectbox", "layer", None)], [("number_input", "ch", 3), ("number_input", "row", 2)]],
                       ("class=Coat", "index=1", "net=downsample_compare-blurmax-s2&", "ch=3", "row=2")),
}


@pytest.mark.parametrize("url_path, part", list(CASES), ids=[f"{u}-{p or 'first tab'}" for u, p in CASES])
def test_a_pages_link_at_its_defaults_is_bare_and_with_other_choices_reopens_them(url_path, part):
    if part is None:
        at = open_page(url_path)
        assert link_of(at)[0].startswith("(this page as it opens")  # every choice at its default: nothing to say
    else:
        at = open_page(url_path, {"part": part})
        assert urlencode({"part": part}) in link_of(at)[0]  # the open tab is part of the view
    rounds, must_say = CASES[(url_path, part)]
    for changes in rounds:
        set_and_run(at, changes)
    assert_reopens(at, url_path, must_say)


def test_the_train_forms_link_reopens_its_network():
    at = open_page("train_compare")
    assert link_of(at)[0].startswith("(this page as it opens")
    set_and_run(at, [("selectbox", "t_arch", "lenet5"), ("selectbox", "t_dataset", "cifar10")])
    set_and_run(at, [("selectbox", "t_downsample_lenet5", "avg"), ("number_input", "t_epochs", 3),
                     ("number_input", "t_batch", 128), ("selectbox", "t_lr", "lecture (1e-5)"),
                     ("selectbox", "t_opt", "sgd"), ("selectbox", "t_subset", 2048), ("number_input", "t_seed", 4)])
    assert_reopens(at, "train_compare", ("arch=lenet5", "dataset=cifar10", "downsample=avg", "epochs=3",
                                         "batch=128", "optimizer=sgd", "images=2048", "seed=4", "lr=lecture"))


def _present_group(gid: str) -> list[str]:
    ids = [f for f in shipped.comparison_groups()[gid].files if (shipped.shipped_dir() / f).exists()]
    if not ids:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no shipped run of {gid} here")
    return ids


def test_a_compared_group_is_a_short_link_that_reopens_the_group_and_the_run_looked_at():
    gid = shipped.group_id("architectures", "cifar10")
    members = _present_group(gid)
    at = open_page("train_compare", {"part": "Compare"})
    assert link_of(at)[0] == "?part=Compare"  # the default selection is left out, however many runs it holds
    at.selectbox(key="c_shipped_group").set_value(gid).run()
    at.button(key="c_load_group").click().run()
    assert at.multiselect(key="c_runs").value == members
    set_and_run(at, [("selectbox", "run", members[-1]), ("selectbox", "b", members[-1]), ("toggle", "c_group", False)])
    old_style = len(",".join(members))
    fresh = assert_reopens(at, "train_compare", (f"group={gid}", "part=Compare", f"run={len(members)}", "seeds=0"))
    assert "runs=" not in link_of(fresh)[0] and len(link_of(fresh)[0]) < old_style


def test_runs_added_to_a_group_follow_it_in_the_link():
    gid = shipped.group_id("baselines", "fashion-mnist")
    members = _present_group(gid)
    extra = next(r.filename for r in shipped.runs_of_group("downsampling", "fashion-mnist") if r.path.exists())
    at = open_page("train_compare", {"part": "Compare", "group": gid})
    assert at.multiselect(key="c_runs").value == members
    set_and_run(at, [("multiselect", "c_runs", [*members, extra])])
    assert link_of(at)[1]["runs"] == extra
    assert_reopens(at, "train_compare", (f"group={gid}", f"runs={extra}"))


def test_an_old_link_with_every_run_listed_still_opens_and_now_links_by_group():
    gid = shipped.group_id("seeds", "fashion-mnist")
    members = _present_group(gid)
    at = open_page("train_compare", {"part": "Compare", "runs": ",".join(members[1:])})  # not the default
    assert at.multiselect(key="c_runs").value == members[1:]
    lecture = _present_group(shipped.group_id("lecture", "cifar10"))
    old = open_page("train_compare", {"part": "Compare", "runs": ",".join(lecture)})
    assert old.multiselect(key="c_runs").value == lecture
    assert link_of(old)[1] == {"part": "Compare", "group": shipped.group_id("lecture", "cifar10")}


def test_an_unknown_group_in_the_link_opens_the_default_with_a_notice():
    at = open_page("train_compare", {"part": "Compare", "group": "nonsense"})
    assert any("`group=nonsense` in the link is not a shipped comparison group" in i.value for i in at.info)
    assert at.multiselect(key="c_runs").value == run_picker.default_selection(catalog.runs_by_id())


def test_the_link_leaves_out_defaults_the_owners_key_and_the_presentation_switch():
    params = {"arch": "lenet5", "dataset": "fashion-mnist", "owner_key": "secret", "present": "1", "job": "j1"}
    assert shareable(params, {"arch": "downsample_compare", "dataset": "fashion-mnist"}) == {"arch": "lenet5",
                                                                                           "job": "j1"}


def test_a_selection_starting_with_a_group_is_linked_by_the_largest_such_group():
    groups = {"small": ("Small", ["a", "b"]), "big": ("Big", ["a", "b", "c"]), "other": ("Other", ["x"])}
    assert run_picker.link_params(["a", "b", "c", "y"], groups, ["x"]) == {"group": "big", "runs": "y"}
    assert run_picker.link_params(["a", "b"], groups, ["x"]) == {"group": "small"}
    assert run_picker.link_params(["b", "a"], groups, ["x"]) == {"runs": "b,a"}  # order is the chart's colours
    assert run_picker.link_params(["x"], groups, ["x"]) == {}


@pytest.mark.parametrize("url_path", [p.url_path for p in nav.PAGES])
def test_presenting_hides_the_sidebar_the_share_box_and_the_menu(url_path):
    at = open_page(url_path, {"present": "1"})
    assert not at.sidebar.code and not at.sidebar.markdown  # no share box
    style = " ".join(h.proto.body for h in at.get("html"))
    for hidden in ("stSidebar", "stToolbar", "stElementToolbar", "modebar"):
        assert hidden in style
    assert [t.value for t in at.title] == [nav.lesson(url_path).title]
    assert at.query_params["present"] in ("1", ["1"])  # a rerun keeps presenting
    at.run()
    assert not at.sidebar.code


def test_a_presented_home_opens_every_lesson_presented():
    at = AppTest.from_file(str(nav.APP), default_timeout=WAIT)
    at.query_params["present"] = "1"
    at.run()
    assert not at.exception
    assert [el.proto.query_string for el in at.get("page_link")] == ["present=1"] * len(nav.PAGES)
    plain = AppTest.from_file(str(nav.APP), default_timeout=WAIT).run()
    assert {el.proto.query_string for el in plain.get("page_link")} == {""}


def test_without_present_the_share_box_offers_the_projecting_link():
    at = open_page("architectures", {"arch": "vgg16"})
    link, presenting = (c.value for c in at.sidebar.code)
    assert presenting == link + "&present=1"
    assert "stToolbar" not in " ".join(h.proto.body for h in at.get("html"))


def test_every_shipped_group_with_its_run_and_both_runs_of_the_diff_picked_fits_a_slide():
    """The longest Compare link a group gives: the group, and the one run and runs A and B at its last positions."""
    from urllib.parse import urlencode

    for gid, group in shipped.comparison_groups().items():
        ids = list(group.files)
        params = {"part": "Compare", **run_picker.link_params(ids, {gid: (group.title, ids)}, [])}
        last = str(len(ids))
        link = f"{CLOUD}train_compare?{urlencode({**params, 'run': last, 'a': last, 'b': last})}"
        assert params["group"] == gid and len(link) <= SLIDE, link


def test_a_run_named_in_full_by_an_older_link_opens_and_the_link_now_says_it_short():
    full = "fashion-mnist-downsample_compare-avg.pt"
    if not (shipped.shipped_dir() / full).exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{full} is not shipped here")
    at = open_page("inside", {"net": full})
    assert at.selectbox(key="net").value == full
    assert link_of(at)[1]["net"] == "downsample_compare-avg"


def test_short_run_names_drop_the_dataset_and_the_extension_unless_two_ids_would_share_one():
    ids = ["cifar10-lenet5-max.pt", "yours/cifar10-lenet5-max.pt", "upload/a.pt", "upload/a", "b.pt", "b"]
    # "upload/a.pt" and "b.pt" would be named like the ids "upload/a" and "b": all four keep their full text.
    assert catalog.link_names(ids, "cifar10") == {"cifar10-lenet5-max.pt": "lenet5-max",
                                                  "yours/cifar10-lenet5-max.pt": "yours/lenet5-max"}
