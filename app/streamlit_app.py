"""CVAE Digit Explorer: the Streamlit entrypoint, a router over the pages.

    streamlit run app/streamlit_app.py

Sets the page config, lists the pages explicitly, runs the chosen page and draws the shared
sidebar (model picker and model card). The page runs first and the sidebar is filled after it:
the sidebar needs torch (about 2.5 s to import here), and the landing page's canvas should
reach the browser before that, not after. The pages live in ``app/views/``: a folder named ``pages/``
beside this file would also be run by Streamlit as a legacy multipage app, bypassing the router on a
deep link. Models and every computation come from ``cvae_core``, cached by the ``app`` modules
(``cached_models``, ``inputs``, ``reading``, ``latent_space``, ``examples``).
"""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "views"


def run() -> None:
    st.set_page_config(page_title="CVAE Digit Explorer", page_icon="✍️", layout="wide")
    pages = [
        st.Page(PAGES / "draw.py", title="Draw & recognise", icon=":material/draw:", default=True),
        st.Page(PAGES / "number.py", title="Read a number", icon=":material/pin:"),
        st.Page(PAGES / "latent.py", title="Latent explorer", icon=":material/tune:"),
        st.Page(PAGES / "compare.py", title="Compare conv vs MLP", icon=":material/compare:"),
        st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
        st.Page(PAGES / "archive.py", title="Archive", icon=":material/inventory_2:"),
    ]
    page = st.navigation(pages)
    page.run()
    from app import sidebar  # imports torch: after the page's first elements are sent

    sidebar.render()


if __name__ == "__main__":
    run()
