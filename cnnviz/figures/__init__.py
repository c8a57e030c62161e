"""Every plotly figure of cnnviz, one module per kind of picture; the pages only lay them out.

`maps`: tiled feature maps, kernels and images; `runs`: training curves, seed bands, cost scatter,
confusion; `layers`: the layer-shape diagram and the sliding window; `scores`: class-score maps on a
canvas. All are importable from `cnnviz.figures` directly.
"""
from .layers import shapes_figure, sliding_figure
from .maps import heatmap, image_figure, labelled_grid_figure, tile
from .runs import (METRIC_LABELS, NO_METHOD_COLOR, RUN_COLORS, band_figure, bars_figure, confusion_figure,
                   cost_scatter_figure, curves_figure, downsample_color, group_curves_figure, run_color,
                   split_labels)
from .scores import CLASS_COLORS, canvas_figure, class_map_figure, score_maps_figure
from .style import column_width

__all__ = ["CLASS_COLORS", "METRIC_LABELS", "NO_METHOD_COLOR", "RUN_COLORS", "band_figure", "bars_figure",
           "canvas_figure", "class_map_figure", "column_width", "confusion_figure", "cost_scatter_figure", "curves_figure",
           "downsample_color", "group_curves_figure", "heatmap", "image_figure", "labelled_grid_figure",
           "run_color", "score_maps_figure", "shapes_figure", "sliding_figure", "split_labels", "tile"]
