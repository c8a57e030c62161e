"""cnnviz: the home page and the navigation over the files in pages/."""
import streamlit as st

st.set_page_config(page_title="cnnviz: how CNNs are built", page_icon="🧱", layout="wide")

# Each page's URL path is its file name (/train_compare, /downsampling, ...), the path Streamlit's legacy
# pages/ mode gives the same file: the one run in that mode (see ui.header) then reruns the same page here.
PAGES = {
    "train": st.Page("pages/train_compare.py", title="Train & compare", icon=":material/show_chart:"),
    "downsampling": st.Page("pages/downsampling.py", title="Downsampling: pooling vs interpolation vs stride",
                            icon=":material/compress:"),
    "engineered": st.Page("pages/engineered.py", title="Engineered vs learned features",
                          icon=":material/science:"),
    "architectures": st.Page("pages/architectures.py", title="Architectures", icon=":material/account_tree:"),
}


def home():
    from cnnviz.checkpoints import list_checkpoints
    from cnnviz.data import available_sources, missing_message
    from cnnviz.device import describe_device
    from cnnviz.models import list_archs

    import ui

    st.title("cnnviz: see how standard CNNs are built")
    st.markdown(
        "A companion to the lecture *Construction of Standard CNNs*: conv-only networks on Fashion-MNIST "
        "and CIFAR-10, max and average pooling, strided convolution, interpolation as downsampling, "
        "padding and the output-size formula, 1x1 convolution in place of fully-connected layers, "
        "LeNet-5 and VGG16, and engineered (Sobel, Scharr, Laplacian) against learned features. "
        "Every number on these pages is computed from real data by the code, while you watch.")
    cols = st.columns(4)
    for col, key in zip(cols, PAGES):
        page = PAGES[key]
        with col:
            st.page_link(page, label=page.title, icon=page.icon)
    st.subheader("On this machine")
    c1, c2, c3 = st.columns(3)
    c1.metric("Compute device", describe_device().split(" (")[0])
    c1.caption(describe_device())
    shipped = list_checkpoints(ui.SHIPPED)
    c2.metric("Shipped checkpoints", len(shipped))
    c2.caption("Trained by this project with its own CLI; see checkpoints/manifest.json.")
    c3.metric("Architectures", len(list_archs()))
    c3.caption(", ".join(list_archs()))
    st.markdown("**Datasets found**")
    for name, source in available_sources().items():
        if source:
            st.success(f"{name}: {source}")
        else:
            st.warning(missing_message(name))


pg = st.navigation([st.Page(home, title="Home", icon=":material/home:", default=True), *PAGES.values()])
pg.run()
