"""The app's pages (one file each, listed in `pages.ui.nav.PAGES`) and `pages.ui`, the Streamlit glue they share.

A package so that `pages.ui` imports the same way from a page, from streamlit_app.py and from the tests.
Streamlit never shows this file or `ui/` as a page: the legacy pages/ mode lists only `pages/*.py` other
than `__init__.py`, and `st.navigation` shows only the pages it is given.
"""
