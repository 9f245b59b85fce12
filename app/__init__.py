"""The Streamlit web UI (``matextract app``): extract, inspect evidence, review, export."""
