"""CVAE Digit Explorer: the Streamlit entrypoint, a router over the pages.

    streamlit run app/streamlit_app.py

Sets the page config, lists the pages explicitly, draws the shared sidebar (model picker and
model card) and runs the chosen page. The pages live in ``app/views/``: a folder named ``pages/``
beside this file would also be run by Streamlit as a legacy multipage app, bypassing the router on a
deep link. Models and every computation come from ``cvae_core`` through ``app.common``.
"""

from pathlib import Path

import streamlit as st

from app import sidebar

PAGES = Path(__file__).parent / "views"


def run() -> None:
    st.set_page_config(page_title="CVAE Digit Explorer", page_icon="✍️", layout="wide")
    pages = [
        st.Page(PAGES / "draw.py", title="Draw & recognise", icon=":material/draw:", default=True),
        st.Page(PAGES / "latent.py", title="Latent explorer", icon=":material/tune:"),
        st.Page(PAGES / "compare.py", title="Compare conv vs MLP", icon=":material/compare:"),
    ]
    if (PAGES / "archive.py").exists():  # the archive ships separately; the app works without it
        pages.append(st.Page(PAGES / "archive.py", title="Archive", icon=":material/inventory_2:"))
    page = st.navigation(pages)
    sidebar.render()
    page.run()


if __name__ == "__main__":
    run()
