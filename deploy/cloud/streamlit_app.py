"""Streamlit Community Cloud's entrypoint: the same app as ../../streamlit_app.py, started from this folder so
that Cloud installs this folder's requirements.txt (CPU-only torch) instead of the repository's (CUDA torch).

Cloud reads the dependency file beside the entrypoint first; pick this file as "Main file path" when creating the
app. Pages are found by absolute path (`pages.ui.nav.Lesson.path`), so they run the same from here.
"""
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: streamlit_app.py, pages/, cnnviz/
if str(ROOT) not in sys.path:  # Streamlit puts only this file's folder on sys.path
    sys.path.insert(0, str(ROOT))

runpy.run_path(str(ROOT / "streamlit_app.py"), run_name="__main__")
