"""The Streamlit web UI (``matextract app``): pages, their state and helpers."""
