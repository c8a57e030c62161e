"""Widgets whose choice lives in the URL, the notices they give, the image picker, the share link, error lines.

A URL-backed widget starts from its URL parameter (a shared link opens the same view), falls back to its
default with a notice when the link holds something that is not a choice here, and writes its choice back.
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

import streamlit as st

from cnnviz import figures
from cnnviz.checkpoints import CheckpointError
from cnnviz.data import DATASETS
from cnnviz.downsample import downsample_label
from cnnviz.images import MAX_UPLOAD_MB as MAX_IMAGE_MB, ImageError, load_image

from . import loaders, nav

# The owner's secret of a tab's training jobs (pages/ui/jobs.py): in its URL, never in a link it shares.
OWNER_PARAM = "owner_key"


class Notices(list):
    """Lines about the link ("`arch=x` in the link is not a choice here..."), shown where the page wants them."""

    def show(self, where=st) -> None:
        for n in self:
            where.info(n)
        self.clear()

    def show_as_list(self, where, heading: str) -> None:
        if self:
            where.info(heading + "\n\n" + "\n".join(f"- {n}" for n in self))
        self.clear()


def start_from_url(key: str, options, default, notices: list[str], *, param: str | None = None, fmt=str,
                   aliases: dict | None = None) -> None:
    """Seed widget `key` before it is drawn: from the URL parameter `param` (default: `key`), else `default`.

    A link is read once per parameter and session; a value there that is not among `options` falls back to
    `default` with a line in `notices`. Afterwards the URL holds what this session wrote itself, so a value
    that no longer fits (another net takes other downsamplings) falls back quietly. `options` may be a
    range of whole numbers. `aliases` maps other texts a link may use to options (a run's position, see `select`).
    """
    param = param or key
    _remember_default(param, next((k for k, v in (aliases or {}).items() if v == default), default))
    read = st.session_state.setdefault("_url_params_read", set())
    if key in st.session_state:
        if st.session_state[key] not in options:
            st.session_state[key] = default
        return
    raw = st.query_params.get(param)
    match = _option_named(options, raw, aliases) if raw is not None else None
    if raw is not None and match is None and param not in read:
        allowed = (f"a whole number from {options.start} to {options.stop - 1}" if isinstance(options, range)
                   else "a choice here")
        notices.append(f"`{param}={link_value(raw)}` in the link is not {allowed}; showing {fmt(default)} instead.")
    read.add(param)
    st.session_state[key] = default if match is None else match


def _remember_default(param: str, default) -> None:
    """Note the value `param` takes when a link leaves it out, so `share_link` can leave it out. Kept per page and
    session, not per run: a choice drawn on another tab of the page (still in the URL) keeps its default too."""
    page = nav.current()
    per_page = st.session_state.setdefault("_link_defaults", {})
    per_page.setdefault(page.url_path if page else "", {})[param] = str(default)


def link_defaults() -> dict[str, str]:
    """param -> the text of its default, for every URL-backed widget this page has drawn in this session."""
    page = nav.current()
    return st.session_state.get("_link_defaults", {}).get(page.url_path if page else "", {})


def shareable(params: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
    """The parameters a shared link needs: none equal to its default (a fresh session starts there anyway), not
    the owner's key of the tab's jobs, not the presentation switch (the share box offers it separately)."""
    private = {OWNER_PARAM, nav.PRESENT_PARAM}
    return {k: v for k, v in params.items() if k not in private and defaults.get(k) != v}


def _option_named(options, raw: str, aliases: dict | None = None):
    """The option whose text is `raw`, or None. A whole number is ASCII digits only (at most 9, an optional
    minus): `str.isdigit` also accepts "²" and 5,000 digits, which `int()` refuses or must not be fed."""
    if isinstance(options, range):
        number = re.fullmatch(r"-?[0-9]{1,9}", raw)
        return int(raw) if number and int(raw) in options else None
    named = next((o for o in options if str(o) == raw), None)
    return named if named is not None or not aliases else aliases.get(raw)


def link_value(raw: str, limit: int = 40) -> str:
    """A value from the link as it may be echoed inside a code span: at most `limit` characters, one line,
    no backtick (which would end the span and let the rest render as markdown, links included)."""
    text = " ".join(str(raw).split()).replace("`", "'")
    return text if len(text) <= limit else text[:limit] + "…"


def select(label: str, options, key: str, default, notices: list[str], *, param: str | None = None, fmt=str,
           where=st, widget: str = "selectbox", by_position: bool = False, link_names: dict | None = None, **kwargs):
    """A selectbox (or `widget="segmented_control"`/`"radio"`) kept in the URL under `param` (default: `key`).

    Long options get short names in the URL (a link naming an option's full text still opens it): `link_names`
    maps options to them (`catalog.link_names` for run ids), and `by_position` names each by its position (from
    1, `run=3`), for options whose list the URL fixes already (the runs compared)."""
    param = param or key
    options = list(options)
    if by_position:
        link_names = {o: str(i) for i, o in enumerate(options, 1)}
    aliases = {name: o for o, name in (link_names or {}).items()}
    start_from_url(key, options, default, notices, param=param, fmt=fmt, aliases=aliases)
    choice = getattr(where, widget)(label, options, key=key, format_func=fmt, **kwargs)
    st.query_params[param] = (link_names or {}).get(choice, str(choice))
    return choice


def toggle(label: str, key: str, default: bool, notices: list[str], *, param: str | None = None, where=st,
           **kwargs) -> bool:
    """An on/off switch kept in the URL under `param` (default: `key`) as 1 or 0."""
    param = param or key
    start_from_url(key, (True, False), default, notices, param=param, aliases={"1": True, "0": False},
                   fmt=lambda on: "on" if on else "off")
    on = where.toggle(label, key=key, **kwargs)
    st.query_params[param] = "1" if on else "0"
    return on


def downsample_select(spec, key: str, none_key: str, notices: list[str], *, where=st, **kwargs) -> str | None:
    """The net's downsampling, kept in the URL as `downsample` (only the options this net takes), or a
    disabled box (and no parameter) for a net that never downsamples."""
    if spec.downsamples:
        return select("Downsampling", spec.downsamples, key, spec.default_downsample, notices, param="downsample",
                      fmt=downsample_label, where=where, **kwargs)
    st.query_params.pop("downsample", None)
    where.selectbox("Downsampling", ["none: this net never downsamples"], key=none_key, disabled=True)
    return None


def number(label: str, lo: int, hi: int, key: str, default: int, notices: list[str], *, param: str | None = None,
           where=st, widget: str = "number_input", **kwargs) -> int:
    """A whole number from lo to hi (a number input, or `widget="slider"`) kept in the URL under `param`."""
    param = param or key
    start_from_url(key, range(lo, hi + 1), default, notices, param=param)
    if widget == "slider":
        value = where.slider(label, lo, hi, key=key, **kwargs)
    else:
        value = where.number_input(label, lo, hi, key=key, **{"step": 1, **kwargs})
    st.query_params[param] = str(int(value))
    return int(value)


def metrics_row(*metrics: tuple) -> None:
    """One row of st.metric, one column each: (label, value) or (label, value, help)."""
    for col, (label, value, *tip) in zip(st.columns(len(metrics)), metrics):
        col.metric(label, value, help=tip[0] if tip else None)


def slider_in_range(label: str, lo: int, hi: int, key: str, *, where=st, **kwargs) -> int:
    """A slider whose remembered value falls back to `lo` once a new range (another size) no longer holds it."""
    if st.session_state.get(key, lo) > hi:
        st.session_state[key] = lo
    return where.slider(label, lo, hi, key=key, **kwargs)


def image_picker(data, dataset: str, notices: list[str], *, key: str = "", where=st):
    """The image a page works on: a test image (class, then its number within the class), or the user's upload.

    Returns (image as a (C, H, W) uint8 tensor, a caption saying which image it is). The class and the
    number live in the URL (`class=Sneaker&index=4`); an upload replaces the test image while it is there.
    """
    spec = DATASETS[dataset]
    c1, c2 = where.columns(2)
    # One widget per dataset: a class kept from another dataset would label an airplane "T-shirt/top".
    cls = select("Test-set class", spec.classes, f"{key}class_{dataset}", spec.classes[0], notices, param="class",
                 where=c1, help="A class of the dataset's test split.")
    members = loaders.class_indices(dataset)[spec.classes.index(cls)]
    i = number(f"Image number within the class (0..{len(members) - 1})", 0, len(members) - 1, f"{key}index", 0,
               notices, param="index", where=c2, help="The i-th test image of the class, in test-set order.")
    test_index = int(members[i])
    x, label = data.test_x[test_index], f"test image #{test_index} ({cls})"
    c, h, w = spec.shape
    upload = where.file_uploader("Or use your own image (PNG or JPEG)", type=["png", "jpg", "jpeg", "bmp", "webp"],
                                 key=f"{key}upload", max_upload_size=MAX_IMAGE_MB,
                                 help=f"Converted to the dataset's format: {c} channel(s), {h}x{w} pixels.")
    if upload is not None:
        try:
            x, conversions = load_image(upload.getvalue(), c, (h, w))
        except ImageError as e:
            where.error(f"{upload.name}: {e}. Showing {label} instead.")
        else:
            label = f"your image {upload.name}"
            if conversions:
                where.caption("Converted: " + "; ".join(conversions) + ".")
    return x, label


def picked_class(dataset: str, label: str, *, key: str = "") -> int | None:
    """The class index of the image `image_picker` returned with caption `label`: its test image's class, or
    None for the user's own image (whose class nobody knows)."""
    if label.startswith("your image"):
        return None
    return DATASETS[dataset].classes.index(st.session_state[f"{key}class_{dataset}"])


def percent_columns(df, columns: dict[str, str]):
    """(copy of `df` with these 0-1 columns in percent, their column configs) for st.dataframe.

    `columns` maps a column to its header. Streamlit's own "percent" format drops trailing zeros
    (54% beside 59.55%), which reads as a rounded figure; here every value keeps two decimals."""
    shown = df.assign(**{c: df[c] * 100 for c in columns})
    return shown, {c: st.column_config.NumberColumn(label, format="%.2f %%") for c, label in columns.items()}


def pct(x, digits: int = 2) -> str:
    """A 0-1 fraction as a percentage, or a dash for a missing one."""
    return "—" if x is None or x != x else f"{100 * x:.{digits}f} %"


def curve_pair(curves: list[dict], keys: tuple[str, str], metrics=(("test_acc",), ("test_loss",)),
               titles=("Test accuracy per epoch", "Test loss per epoch"), yaxes=(None, None), **options) -> None:
    """Two charts of the same runs side by side (test accuracy left, test loss right by default); `options`
    (the x axis's name and step) go to both `figures.curves_figure`s."""
    for col, key, shown, title, yaxis in zip(st.columns(2), keys, metrics, titles, yaxes):
        col.plotly_chart(figures.curves_figure(curves, shown, title=title, yaxis=yaxis, **options), key=key)


def lazy_tabs(parts: dict) -> None:
    """A page's parts as tabs (title -> function drawing it), the open one kept in the link as `part`; only the
    open tab's function runs, so a page costs what its open tab costs (Streamlit draws every tab otherwise)."""
    for tab, draw in zip(st.tabs(list(parts), key="part", bind="query-params"), parts.values()):
        with tab:
            if tab.open:
                draw()


def figure_rows(panels: list[tuple], per_row: int = 4) -> None:
    """Figures in rows of `per_row` columns; each panel is (key, figure, heading or None, caption or None)."""
    for row in range(0, len(panels), per_row):
        for col, (key, fig, heading, caption) in zip(st.columns(per_row), panels[row:row + per_row]):
            if heading is not None:
                # A fixed-height heading keeps the figures of one row level when a heading wraps to two lines.
                col.markdown(f"<div style='min-height:3.2em'>{heading}</div>", unsafe_allow_html=True)
            col.plotly_chart(fig, key=key)
            if caption is not None:
                col.caption(caption)


def share_link() -> None:
    """The exact view as a link, in the sidebar (st.code has a copy button), and the same view for projecting.
    Call it last on a page: every choice the page made has been written to st.query_params by then. Choices at
    their default are left out (the link fits a slide), and so is the owner's key of the tab's jobs: whoever
    opens the link watches a job, only its owner can stop it. Presenting, there is no sidebar to draw it in."""
    if nav.presenting():
        return
    query = urlencode(shareable(st.query_params.to_dict(), link_defaults()))
    base = st.context.url or ""  # None when no browser is attached (AppTest)
    present = urlencode({nav.PRESENT_PARAM: "1"})
    st.sidebar.markdown("**Link to this view**")
    st.sidebar.code(f"{base}?{query}" if query else base or "(this page as it opens: every choice at its default)",
                    language=None, wrap_lines=True)
    st.sidebar.caption("The page's menus, numbers and switches that differ from their defaults are in the link: "
                       "paste it into slides and students land on this same view.")
    st.sidebar.markdown("**The same view for projecting**")
    st.sidebar.code(f"{base}?{query + '&' if query else ''}{present}", language=None, wrap_lines=True)
    st.sidebar.caption("No sidebar, no toolbars, no help icons: only the lesson, for a projector.")


def one_line(e: Exception) -> str:
    """A user-caused failure as one line: its message (CheckpointError, ValueError...), else its type and the
    first line of its message; never a traceback."""
    text = (str(e).strip().splitlines() or [""])[0]
    return text if isinstance(e, (CheckpointError, ValueError, PermissionError)) and text else \
        f"{type(e).__name__}: {text}".rstrip(": ")


def show_error(e: Exception) -> None:
    st.error(one_line(e))


def take_click(chart_key: str, row_key: str, col_key: str) -> None:
    """A click on the plotly chart `chart_key` (drawn with on_select="rerun"; its selection is in session state
    from the run the click started): copy the clicked point's row (y) and column (x) into the number inputs
    `row_key`, `col_key` before they are drawn. Each click is taken once, so typing a number afterwards wins."""
    event = st.session_state.get(chart_key)
    points = (event.get("selection") or {}).get("points") or [] if event else []
    if not points:
        return
    cell = (int(round(points[0]["y"])), int(round(points[0]["x"])))
    taken = f"_{chart_key}_taken"
    if st.session_state.get(taken) != cell:
        st.session_state[taken] = cell
        st.session_state[row_key], st.session_state[col_key] = cell
