"""matextract web UI. Start it with ``matextract app`` (or ``streamlit run app/streamlit_app.py``).

Extract records from papers with a local model, check every value against the place it was
found, correct and accept records, export them, and save corrections as training data.
"""

from __future__ import annotations

import streamlit as st

from app.web import eval_results
from app.web import limits
from app.web import ui_eval
from app.web import ui_extract
from app.web import ui_review
from app.web.state import Job
from extraction.settings import force_offline, quiet_libraries

force_offline()
quiet_libraries()


def extract_page() -> None:
    state = st.session_state
    st.title("matextract")
    st.caption("Structured records from materials-science papers with a small local model. "
               "Every value is linked to where it was found in the text.")
    config = ui_extract.sidebar_config()
    source, given = ui_extract.input_widgets()

    job: Job | None = state.get("job")
    buttons = st.container(horizontal=True, vertical_alignment="center")
    if buttons.button("Extract", type="primary", disabled=config is None, key="extract"):
        found, problems = ui_extract.collect_documents(source, given)
        state["input_problems"] = problems
        if found and config is not None:
            if job is not None:
                job.cancel()  # an earlier run still reading keeps its results to itself
            state.pop("record_choice", None)
            job = state["job"] = Job(pending=found, total=len(found), config=config.model_dump())
    if buttons.button("Cancel", disabled=job is None or not job.running, key="cancel",
                      help="stops after the document being read now; finished ones are kept"):
        if job is not None and job.running:
            job.cancel()
            with st.spinner(f"Cancelling: finishing {job.active}…" if job.active else
                            "Cancelling…"):
                job.wait_idle()
    buttons.caption("A new run replaces the results below." if job and job.results else
                    "The first run loads the model; later runs reuse it.")
    for problem in state.get("input_problems", []):
        st.error(problem)

    if job is None:
        return
    if job.running:
        ui_extract.run_job(job)
    if job.cancelled and job.done < job.total:
        st.warning(f"Cancelled after {job.done} of {job.total} document(s).")
    for failure in job.failed:
        st.error(failure)
    if job.results:
        ui_review.render(job.results)
        ui_review.render_export(job.results)


def main() -> None:
    st.set_page_config(page_title="matextract", page_icon=":material/science:", layout="wide")
    pages = [st.Page(extract_page, title="Extract and review", icon=":material/description:",
                     url_path="extract", default=True)]
    if eval_results.result_folders(limits.eval_dir()):
        pages.append(st.Page(ui_eval.page, title="Evaluation results",
                             icon=":material/monitoring:", url_path="evaluation"))
    st.navigation(pages).run()


main()
