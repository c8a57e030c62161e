"""cnnviz: see how standard CNNs are built (the library under the dashboard)."""
__version__ = "0.1.0"
