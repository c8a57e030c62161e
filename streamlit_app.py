"""cnnviz: the home page and the navigation over the pages listed in pages/ui/nav.py."""
from pathlib import Path

import streamlit as st

from pages.ui import catalog, nav

st.set_page_config(page_title="cnnviz: how CNNs are built", page_icon="🧱", layout="wide")


def home():
    """The lesson order and what this machine has. Nothing heavy: no dataset or model is loaded here."""
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
    st.subheader("Start here: the lessons in the lecture's order")
    keep = {nav.PRESENT_PARAM: "1"} if nav.presenting() else None  # a projected home opens projected lessons
    for number, page in enumerate(nav.PAGES, 1):
        st.page_link(page.path, label=f"{number}. {page.title}", icon=page.icon, query_params=keep)
        part = ("In the lecture: " + " · ".join(f"*{p}*" for p in page.lecture) if page.lecture
                else "Beyond the lecture's slides.")
        st.markdown(f"{page.does}  \n{part}")
    st.subheader("On this machine")
    c1, c2, c3 = st.columns(3)
    c1.metric("Compute device", describe_device().split(" (")[0])
    c1.caption(describe_device())
    c2.metric("Shipped checkpoints", len(list(Path(catalog.SHIPPED).glob("*.pt"))))  # counted, not opened
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
