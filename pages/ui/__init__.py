"""The app layer: what every page shares, on top of the library (`cnnviz`, which never imports streamlit).

- `nav`: the page list (one entry per page) and the header that runs a page inside the app's navigation
- `catalog`: where runs live, the one run-id scheme, the runs table
- `loaders`: datasets, checkpoints, metadata and predictions, cached once per process
- `widgets`: URL-backed widgets, notices, the image picker, the share link, error lines
- `jobs`: the job registry and the panel that follows a background training
"""
