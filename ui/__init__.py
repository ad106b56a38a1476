"""The Streamlit page (installed as `kb.ui`)."""
