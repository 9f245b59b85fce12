"""The evaluation results page: tables and plots written by ``matextract eval``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.web import eval_results
from app.web import limits


@st.cache_data(max_entries=16, show_spinner="Reading evaluation results…")
def _view(folder: str, signature: tuple[tuple[str, float], ...]) -> eval_results.ResultsView:
    # ``signature`` (file names and times) makes a finished or extended run show at once.
    return eval_results.load(Path(folder))


def _signature(folder: Path) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((p.name, p.stat().st_mtime) for p in folder.iterdir() if p.is_file()))


def page() -> None:
    root = limits.eval_dir()
    st.title("Evaluation results")
    folders = eval_results.result_folders(root)
    if not folders:
        st.info(f"No evaluation results in `{root}`. Write some with "
                f"`matextract eval --task doping --model smollm2-135m --out {root}/doping`.")
        return
    folder = st.selectbox("Results folder", folders, key="eval_folder",
                          format_func=lambda p: str(p.relative_to(root.parent))
                          if p.is_relative_to(root.parent) else str(p))
    try:
        view = _view(str(folder), _signature(folder))
    except Exception as exc:  # noqa: BLE001 - a half-written folder must not end the session
        st.error(f"{folder}: cannot read these results ({type(exc).__name__}: {exc})")
        return
    st.caption(f"{view.examples} scored example(s). Strict = the NERRE paper's word-level "
               "scorer; norm. = our normalised entity-level scorer (eval/README.md).")
    if view.live:
        st.info("Computed from the result lines (the report is missing or older than the "
                "results, e.g. while a run goes on). Rebuild the report and plots with "
                f"`matextract eval --report-only --out {folder}`.")
        for task, table in view.tables.items():
            st.markdown(f"#### {task}\n\n{table}")
        if view.commands:
            st.markdown("Command(s):\n\n" + "\n".join(f"    {c}" for c in view.commands))
    elif view.report:
        st.markdown(view.report)
    if view.images:
        st.markdown("#### Plots" + (" (from the last report)" if view.live else ""))
        for image in view.images:
            st.image(str(image), caption=image.name)
