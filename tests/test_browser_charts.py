"""Every plotly chart on every page, as Chromium draws it: nothing on a chart covers anything else, and no
text is cut off.

One server, one browser, one tab that walks the app the way a class does: the home page, then each page of
`nav.PAGES` by its link in the sidebar, each of a page's tabs, every expander opened; on Train & compare's
Compare tab the largest shipped comparison group is loaded, so its legend holds the most entries. For each
chart the boxes are read from the rendered SVG (`getBoundingClientRect`):

- the legend (`g.legend`), the axis titles (`.g-xtitle`, `.g-ytitle`, ...) and the chart title
  (`.g-gtitle`): no two of them overlap;
- the legend's entries: no two overlap, and the legend does not scroll (a scroll bar hides entries);
- the chart title and the legend do not lie on the plot; no two labels placed on the chart overlap;
- every text of the chart (ticks, legend, titles, annotations, cell numbers) lies inside the chart's SVG box
  and is at least 12 px.

Full-page screenshots land in test-artifacts/charts-*.png for a human to look at.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app  # noqa: E402
from test_browser import RUN_TIMEOUT_MS, require_browser  # noqa: E402

from pages.ui import nav  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
VIEWPORT = {"width": 1440, "height": 900}  # a projector's / a laptop's screen
GROUP_PICKER = "Shipped comparison group"  # the Compare tab's selectbox of shipped groups (pages/ui/run_picker.py)
MIN_FONT_PX = 12  # the smallest text a class reads from the back of the room (cnnviz.figures.style.FONT_SIZE)
SLACK = 1.0  # px: boxes that merely touch (or antialiasing) are not a collision

# For each drawn chart: its Streamlit key, its SVG box, the boxes of its legend, titles and legend entries,
# whether the legend scrolls, and every visible text with its box. Empty titles have no size and are left out.
MEASURE_JS = r"""
() => {
  const box = r => ({l: r.left, t: r.top, r: r.right, b: r.bottom});
  const sized = e => { const r = e.getBoundingClientRect(); return r.width > 0.5 && r.height > 0.5 ? box(r) : null; };
  const charts = [];
  for (const plot of document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot")) {
    const svgs = Array.from(plot.querySelectorAll(".svg-container > svg.main-svg"));
    if (!svgs.length) continue;
    const frame = sized(svgs[0]);
    if (!frame) continue;  // in a closed tab: not drawn
    const holder = plot.closest("[class*='st-key-']");
    const key = holder ? (holder.className.match(/st-key-([^ ]+)/) || [])[1] : null;
    const parts = [];
    for (const g of plot.querySelectorAll("g.legend")) {
      const bg = g.querySelector("rect.bg"); const b = bg && sized(bg);
      if (b) parts.push({name: "legend", box: b});
    }
    for (const g of plot.querySelectorAll("g[class^='g-'][class$='title']")) {
      const texts = Array.from(g.querySelectorAll("text")).filter(t => t.textContent.trim());
      for (const t of texts) { const b = sized(t); if (b) parts.push({name: g.getAttribute("class") + " '" + t.textContent.trim().slice(0, 40) + "'", box: b}); }
    }
    const entries = Array.from(plot.querySelectorAll("g.legend g.traces")).map(g => {
      const t = g.querySelector("text.legendtext"); return t ? {name: t.textContent.trim().slice(0, 40), box: sized(t)} : null;
    }).filter(e => e && e.box);
    const bar = plot.querySelector("g.legend rect.scrollbar");
    const scrolls = !!bar && bar.getBoundingClientRect().height > 0.5;
    const texts = [];
    for (const svg of svgs) {
      for (const t of svg.querySelectorAll("text")) {
        if (!t.textContent.trim() || t.closest(".hoverlayer")) continue;
        const s = getComputedStyle(t);
        if (s.display === "none" || s.visibility === "hidden" || s.opacity === "0") continue;
        const b = sized(t);
        if (b) texts.push({text: t.textContent.trim().slice(0, 40), box: b, size: parseFloat(s.fontSize)});
      }
    }
    const plots = Array.from(plot.querySelectorAll("g.draglayer rect.nsewdrag")).map(sized).filter(b => b);
    // Labels placed on the chart (a tile's name, a layer's size); a rotated one's box is not its outline.
    const notes = Array.from(plot.querySelectorAll("g.annotation")).filter(
      g => !/rotate\((?!0[,)])/.test(g.querySelector(".annotation-text-g")?.getAttribute("transform") || "")
    ).map(g => { const t = g.querySelector("text"); return t && t.textContent.trim() ? {name: t.textContent.trim().slice(0, 40), box: sized(t)} : null; })
     .filter(e => e && e.box);
    charts.push({key, frame, parts, entries, scrolls, texts, plots, notes});
  }
  return {drawn: document.querySelectorAll("[data-testid='stPlotlyChart']").length, charts};
}
"""


def _overlap(a: dict, b: dict) -> bool:
    return min(a["r"], b["r"]) - max(a["l"], b["l"]) > SLACK and min(a["b"], b["b"]) - max(a["t"], b["t"]) > SLACK


def _outside(inner: dict, outer: dict) -> bool:
    return (inner["l"] < outer["l"] - SLACK or inner["t"] < outer["t"] - SLACK or inner["r"] > outer["r"] + SLACK
            or inner["b"] > outer["b"] + SLACK)


def collisions(chart: dict) -> list[str]:
    """What is wrong with one measured chart, one line each."""
    wrong = []
    parts = chart["parts"]
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            if _overlap(a["box"], b["box"]):
                wrong.append(f"{a['name']} overlaps {b['name']}")
    entries = chart["entries"]
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            if _overlap(a["box"], b["box"]):
                wrong.append(f"legend entries {a['name']!r} and {b['name']!r} overlap")
    notes = chart["notes"]
    for i, a in enumerate(notes):
        for b in notes[i + 1:]:
            if _overlap(a["box"], b["box"]):
                wrong.append(f"labels {a['name']!r} and {b['name']!r} overlap")
    for a in parts:
        on_plot = any(_overlap(a["box"], p) for p in chart["plots"])
        if on_plot and (a["name"] == "legend" or a["name"].startswith("g-gtitle")):
            wrong.append(f"{a['name']} lies on the plot")
    if chart["scrolls"]:
        wrong.append(f"the legend scrolls ({len(entries)} entries do not fit)")
    cut = [t["text"] for t in chart["texts"] if _outside(t["box"], chart["frame"])]
    if cut:
        wrong.append(f"{len(cut)} text(s) cut off at the chart's edge, e.g. {cut[:3]}")
    small = sorted({t["text"] for t in chart["texts"] if t["size"] < MIN_FONT_PX})
    if small:
        wrong.append(f"{len(small)} text(s) smaller than {MIN_FONT_PX} px, e.g. {small[:3]}")
    return wrong


def test_collisions_finds_an_overlap_a_cut_text_and_a_scrolling_legend():
    """The checker itself, on hand-made boxes: it must be able to fail."""
    frame = {"l": 0, "t": 0, "r": 400, "b": 300}
    legend = {"name": "legend", "box": {"l": 10, "t": 250, "r": 300, "b": 290}}
    xtitle = {"name": "g-xtitle 'epoch'", "box": {"l": 180, "t": 260, "r": 220, "b": 275}}
    clean = {"frame": frame, "parts": [legend], "entries": [], "scrolls": False, "notes": [],
             "plots": [{"l": 40, "t": 40, "r": 390, "b": 220}],
             "texts": [{"text": "epoch", "box": xtitle["box"], "size": 12}]}
    assert collisions(clean) == []
    assert collisions({**clean, "parts": [legend, xtitle]}) == ["legend overlaps g-xtitle 'epoch'"]
    assert collisions({**clean, "scrolls": True}) == ["the legend scrolls (0 entries do not fit)"]
    cut = {"text": "100k", "box": {"l": 390, "t": 100, "r": 410, "b": 112}, "size": 12}
    assert collisions({**clean, "texts": [cut]}) == ["1 text(s) cut off at the chart's edge, e.g. ['100k']"]
    tiny = {"text": "filter 0", "box": xtitle["box"], "size": 10}
    assert collisions({**clean, "texts": [tiny]}) == ["1 text(s) smaller than 12 px, e.g. ['filter 0']"]
    title_on_map = {"name": "g-gtitle '2019)'", "box": {"l": 40, "t": 30, "r": 90, "b": 45}}
    assert collisions({**clean, "parts": [legend, title_on_map]}) == ["g-gtitle '2019)' lies on the plot"]
    labels = [{"name": "0: edge 23°", "box": {"l": 50, "t": 100, "r": 120, "b": 112}},
              {"name": "1: blob", "box": {"l": 110, "t": 100, "r": 160, "b": 112}}]
    assert collisions({**clean, "notes": labels}) == ["labels '0: edge 23°' and '1: blob' overlap"]


# ---- walking the app -------------------------------------------------------------------------------

def _settled(page) -> None:
    """The script has run to its end and plotly has drawn every chart it sent."""
    page.wait_for_selector("[data-test-script-state='notRunning']", state="attached", timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll(\"[data-testid='stPlotlyChart']\"))"
        ".every(c => c.querySelector('.main-svg'))", timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(800)  # plotly's second pass (automargin, legend layout)


def _rerun_and_settle(page, action) -> None:
    """Do `action` (a click that reruns the script) and wait for that rerun to finish."""
    page.evaluate("() => { window.__cnnvizRan = false; const o = new MutationObserver(() => {"
                  " if (document.querySelector(\"[data-test-script-state='running']\")) window.__cnnvizRan = true; });"
                  " o.observe(document.body, {attributes: true, subtree: true}); }")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    action()
    try:
        page.wait_for_function("() => window.__cnnvizRan", timeout=5_000)
    except PlaywrightTimeout:
        print("no rerun seen within 5 s (a click that reruns nothing, or a rerun faster than the observer)")
    _settled(page)


def _open_expanders(page) -> None:
    for summary in page.locator("[data-testid='stMain'] details:not([open]) > summary").all():
        summary.click()
    page.wait_for_timeout(500)


def _largest_group(page) -> None:
    """Compare tab: choose the shipped comparison group with the most runs and load it."""
    page.locator(f"[data-testid='stSelectbox'] input[aria-label='{GROUP_PICKER}']").click()
    options = page.locator("[role='option']")
    texts = options.all_inner_texts()
    counts = [int(m.group(1)) if (m := re.search(r"\((\d+) runs\)", t)) else 0 for t in texts]
    options.nth(counts.index(max(counts))).click()
    _rerun_and_settle(page, lambda: page.get_by_role("button", name="Compare this group").click())


def _measure(page, shot: Path) -> dict:
    """The page grown to its whole height in one screen (Streamlit scrolls inside its main container, so a
    chart below the fold is measured as if scrolled to), shot, then every chart on it measured."""
    height = page.evaluate("() => document.querySelector(\"[data-testid='stMain']\").scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 20000)})
    page.wait_for_timeout(1500)  # plotly charts re-layout to the new size
    try:
        page.screenshot(path=str(shot), full_page=True)
        return page.evaluate(MEASURE_JS)
    finally:
        page.set_viewport_size(VIEWPORT)


def _views(page, lesson):
    """Put the page in each state worth measuring (each of its top-level tabs, expanders open), yielding its name."""
    # The page's keyed tab bar: its sections, each drawn only once opened (`tab.open`). Tabs without a key are
    # drawn with the page; the charts of the one open are measured.
    tabs = page.locator("[data-testid='stMain'] [data-testid='stTabs'][class*='st-key-'] [role='tablist']").first
    names = tabs.locator("[role='tab']").all_inner_texts() if tabs.count() else []
    for i, name in enumerate(names or [""]):
        tab = tabs.locator("[role='tab']").nth(i)
        if name and tab.get_attribute("aria-selected") != "true":
            _rerun_and_settle(page, tab.click)
        if page.locator("[data-testid='stSelectbox']").filter(has_text=GROUP_PICKER).count():
            _largest_group(page)
        _open_expanders(page)
        yield f"{lesson.url_path}{'-' + re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_') if name else ''}"


@pytest.mark.slow
def test_no_chart_on_any_page_has_overlapping_or_cut_off_text_in_chromium():
    sync_playwright = require_browser()
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("charts-*.png"):  # no stale screenshot may pass for this run's
        old.unlink()
    failures, measured, boxes = [], {}, {}
    with open(ARTIFACTS / "streamlit-charts-server.log", "w") as log, running_app(log) as (port, _), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=RUN_TIMEOUT_MS)
            page.wait_for_selector("h1", timeout=RUN_TIMEOUT_MS)
            _settled(page)
            for lesson in nav.PAGES:
                link = page.locator(f"[data-testid='stSidebarNav'] a[href$='/{lesson.url_path}']")
                _rerun_and_settle(page, link.first.click)
                page.get_by_role("heading", name=lesson.title).first.wait_for(timeout=RUN_TIMEOUT_MS)
                for view in _views(page, lesson):
                    found = _measure(page, ARTIFACTS / f"charts-{view}.png")
                    measured[view] = len(found["charts"])
                    boxes[view] = found["charts"]
                    if errors := page.locator("[data-testid='stException']").count():
                        failures.append(f"/{view}: {errors} exception(s) shown")
                    for chart in found["charts"]:
                        failures += [f"/{view} chart {chart['key']}: {w}" for w in collisions(chart)]
        finally:
            browser.close()
    # Every chart's measured boxes, in page coordinates of its screenshot: where to look when a line fails.
    (ARTIFACTS / "charts-boxes.json").write_text(json.dumps(boxes, indent=1))
    print("charts measured per view:", measured)
    # A walk that drew no chart measured nothing: every page shows charts as a student first opens it.
    bare = [p.url_path for p in nav.PAGES if not sum(n for v, n in measured.items() if v.split("-")[0] == p.url_path)]
    assert not bare, f"no chart measured on {bare}: {measured}"
    assert not failures, "\n".join(failures)
