"""cnnviz: the home page and the navigation over the pages listed in pages/ui/nav.py."""
import streamlit as st

from pages.ui import catalog, nav

st.set_page_config(page_title="cnnviz: how CNNs are built", page_icon="🧱", layout="wide")


def home():
    from cnnviz.checkpoints import list_checkpoints
    from cnnviz.data import available_sources, missing_message
    from cnnviz.device import describe_device
    from cnnviz.models import list_archs

    st.title("cnnviz: see how standard CNNs are built")
    st.markdown(
        "A companion to the lecture *Construction of Standard CNNs*: conv-only networks on Fashion-MNIST "
        "and CIFAR-10, max and average pooling, strided convolution, interpolation as downsampling, "
        "padding and the output-size formula, 1x1 convolution in place of fully-connected layers, "
        "LeNet-5 and VGG16, engineered (Sobel, Scharr, Laplacian) against learned features, and inside one "
        "computation: one pixel worked out by hand, receptive fields, Grad-CAM, and the net as plain PyTorch code. "
        "Every number on these pages is computed from real data by the code, while you watch.")
    per_row = 3  # a page's whole title fits in a third of the width
    for row in range(0, len(nav.PAGES), per_row):
        for col, page in zip(st.columns(per_row), nav.PAGES[row:row + per_row]):
            col.page_link(page.path, label=page.title, icon=page.icon)
    st.subheader("On this machine")
    c1, c2, c3 = st.columns(3)
    c1.metric("Compute device", describe_device().split(" (")[0])
    c1.caption(describe_device())
    c2.metric("Shipped checkpoints", len(list_checkpoints(catalog.SHIPPED)))
    c2.caption("Trained by this project with its own CLI; see checkpoints/manifest.json.")
    c3.metric("Architectures", len(list_archs()))
    c3.caption(", ".join(list_archs()))
    st.markdown("**Datasets found**")
    for name, source in available_sources().items():
        if source:
            st.success(f"{name}: {source}")
        else:
            st.warning(missing_message(name))


nav.run_app(home)
