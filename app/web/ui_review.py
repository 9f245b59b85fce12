"""Results and review: the records table, the source with its evidence, the editor, the
Reflexion trace, timings, and exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.web import export
from app.web import highlight
from app.web import limits
from app.web import review
from app.web.state import DocumentResult, table_rows
from extraction.checking.grounding import Grounder
from extraction.errors import MatextractError
from extraction.schemas import get_schema


def render(results: list[DocumentResult]) -> None:
    rows = table_rows(results)
    st.subheader("Records")
    st.caption("Click a row to see where its values were found. Status: pending until you "
               "accept or reject it; only accepted records are exported.")
    table = pd.DataFrame(rows).drop(columns=["key"])
    event = st.dataframe(table, key="records_table", on_select="rerun",
                         selection_mode="single-row", hide_index=True, width="stretch")
    chosen = _selected_row(rows, list(getattr(getattr(event, "selection", None), "rows", [])))
    row = rows[chosen]
    result = next(r for r in results if r.key == row["key"])
    position = None if row["record"] is None else row["record"] - 1

    _timings(result)
    left, right = st.columns([3, 2], gap="large")
    with right:
        if position is None:
            st.info("The model gave no valid record for this document; see the trace below.")
        else:
            _editor(result, position)
    with left:
        _source(result, position)
    _trace(result)


def _selected_row(rows: list[dict[str, Any]], clicked: list[int]) -> int:
    """The record picked by a table click or the select box (kept in sync)."""
    labels = [f"{r['document']} · record {r['record']}" if r["record"] else
              f"{r['document']} · no record" for r in rows]
    state = st.session_state
    if clicked and clicked != state.get("_table_clicked"):
        state["record_choice"] = clicked[0]
    state["_table_clicked"] = clicked
    if state.get("record_choice", 0) >= len(rows):
        state["record_choice"] = 0
    return st.selectbox("Record", range(len(rows)), format_func=lambda i: labels[i],
                        key="record_choice")


def _timings(result: DocumentResult) -> None:
    timings = result.extraction.get("timings", {})
    model = result.extraction.get("model", {})
    cols = st.columns(4)
    cols[0].metric("Total", f"{timings.get('total_s', 0):.2f} s")
    cols[1].metric("Generation", f"{timings.get('generation_s', 0):.2f} s")
    cols[2].metric("Retrieval", f"{timings.get('retrieval_s', 0):.2f} s")
    cols[3].metric("Model load", f"{st.session_state.get('model_load_s', 0):.2f} s",
                   help="once per process: later runs reuse the loaded model")
    st.caption(f"Model {model.get('name', '?')} · {model.get('precision')} · "
               f"{model.get('device')} · adapter {model.get('adapter') or 'none'} · "
               f"schema {result.extraction.get('schema', {}).get('name')}")
    for problem in result.extraction.get("errors", []):
        st.warning(problem)


def _source(result: DocumentResult, position: int | None) -> None:
    st.markdown(f"**Source: {result.name}**")
    marks = highlight.marks_from_evidence(result.evidence)
    missing = [item for item in result.evidence
               if not item.grounded and (position is None or item.where.record == position)]
    names = [f.name for f in review.field_specs(get_schema(result.schema_ref))]
    colours = highlight.colours([*names, *(m.field for m in marks)])
    legend = highlight.legend({k: v for k, v in colours.items()
                               if any(m.field == k for m in marks)})
    if legend:
        st.html(legend)
    st.html(highlight.render(result.document.text, marks, focus=position,
                             pages=result.document.pages, field_colours=colours,
                             missing=missing))
    if position is None:
        return
    spans = [{"value": item.where.path, "found": span.text, "match": span.match,
              "page": span.page, "offsets": f"{span.start}-{span.end}",
              "sentence": span.sentence or ""}
             for item in result.evidence_of(position) for span in item.spans]
    spans += [{"value": item.where.path, "found": "not found in the source",
               "match": "none", "page": None, "offsets": "", "sentence": item.value}
              for item in missing]
    with st.expander(f"Evidence of record {position + 1} ({len(spans)} span(s))"):
        st.dataframe(pd.DataFrame(spans), hide_index=True, width="stretch")


def _editor(result: DocumentResult, position: int) -> None:
    spec = get_schema(result.schema_ref)
    fields = review.field_specs(spec)
    item = result.reviews[position]
    versions = st.session_state.setdefault("edit_versions", {})
    base = f"edit:{result.key}:{position}:{versions.get((result.key, position), 0)}"
    st.markdown(f"**Record {position + 1}** · {item.status}" + (" · edited" if item.edited
                                                                  else ""))
    if any(f.kind in ("lines", "json") for f in fields):
        st.caption("Lists: one item per line. Boxes are checked when you click outside them "
                   "or press Ctrl+Enter.")
    editors: dict[str, Any] = {}
    slots = {}
    for f in fields:
        initial = review.to_editor(f, item.current.get(f.name))
        key = f"{base}:{f.name}"
        if f.kind == "bool":
            editors[f.name] = st.checkbox(f.name, value=initial, key=key, help=f.help)
        elif f.kind in ("lines", "json"):
            lines = max(2, min(10, initial.count("\n") + 1))
            editors[f.name] = st.text_area(f.name, value=initial, key=key, help=f.help,
                                           height=38 + 24 * lines)
        else:
            editors[f.name] = st.text_input(f.name, value=initial, key=key, help=f.help,
                                            live=True)  # checked after a typing pause
        slots[f.name] = st.empty()  # this field's errors, filled once all fields are read
    checked = review.check(spec, fields, editors, item.current)
    for name, messages in checked.errors.items():
        (slots.get(name) or st).error("\n\n".join(messages))
    for name, messages in checked.problems.items():
        (slots.get(name) or st).warning("\n\n".join(messages))
    if checked.valid and checked.record != item.current:
        result.replace_record(position, checked.record,
                              Grounder(result.document).evidence(checked.record, position))
        st.rerun()  # the table and the highlights above show the edit
    accept, reject, reset = st.columns(3)
    if accept.button("Accept", key=f"accept:{base}", type="primary",
                     disabled=not checked.valid,
                     help=None if checked.valid else "fix the errors first"):
        item.status = "accepted"
        st.rerun()
    if reject.button("Reject", key=f"reject:{base}"):
        item.status = "rejected"
        st.rerun()
    if reset.button("Reset", key=f"reset:{base}", help="back to the model's output",
                    disabled=not item.edited):
        result.replace_record(position, item.original, result.original_evidence_of(position))
        versions[(result.key, position)] = versions.get((result.key, position), 0) + 1
        st.rerun()


def _trace(result: DocumentResult) -> None:
    trace = result.extraction.get("trace", [])
    attempts = sum(len(step.get("attempts", [])) for step in trace)
    with st.expander(f"Reflexion trace: {len(trace)} window(s), {attempts} attempt(s)"):
        for step in trace:
            window = step.get("window", {})
            st.markdown(f"**Characters {window.get('start')}–{window.get('end')}** · best "
                        f"attempt: {step.get('best_attempt')}")
            for attempt in step.get("attempts", []):
                generation = attempt.get("generation", {})
                lines = [f"*Attempt {attempt.get('number')}* — "
                         f"{generation.get('new_tokens', '?')} tokens in "
                         f"{generation.get('seconds', 0):.2f} s "
                         f"({generation.get('finish_reason', '')})"]
                for label, key in (("feedback given", "feedback"), ("schema errors", "errors"),
                                   ("failed checks", "inconsistent"),
                                   ("not in the source", "ungrounded"),
                                   ("left empty", "missing")):
                    if attempt.get(key):
                        lines.append(f"- {label}: " + "; ".join(map(str, attempt[key])))
                if attempt.get("critique"):
                    lines.append(f"- self-critique: {attempt['critique']}")
                if attempt.get("reflection"):
                    lines.append(f"- reflection: {attempt['reflection']}")
                st.markdown("\n".join(lines))
                st.code(attempt.get("raw", ""), language="json", wrap_lines=True)


def render_export(results: list[DocumentResult]) -> None:
    st.subheader("Export and corrections")
    items = export.accepted_items(results)
    total = sum(len(r.reviews) for r in results)
    pending = [rv for r in results for rv in r.reviews if rv.status == "pending"]
    st.caption(f"{len(items)} of {total} record(s) accepted. Pending and rejected records are "
               "not exported.")
    if pending and st.button(f"Accept all {len(pending)} pending record(s)", key="accept_all"):
        for item in pending:
            item.status = "accepted"
        st.rerun()
    cols = st.columns(3)
    for col, (label, render_, name, mime) in zip(cols, (
            ("JSON", export.to_json, "accepted.json", "application/json"),
            ("JSONL", export.to_jsonl, "accepted.jsonl", "application/jsonl"),
            ("CSV", export.to_csv, "accepted.csv", "text/csv"))):
        col.download_button(f"Download {label}", render_(items) if items else "",
                            file_name=f"matextract-{name}", mime=mime, disabled=not items,
                            key=f"download_{label.lower()}", width="stretch")
    schema, schema_file = export.schema_reference(results[0].schema_ref)
    lines = export.correction_lines(results, schema)
    st.markdown("**Corrections as training data** — one line per accepted record (the text "
                "the model read, your record as gold), in the JSONL task format that "
                "`matextract eval` and `matextract finetune` read. Rejected records are left "
                "out: a rejection says what is wrong, not what is right.")
    path = st.text_input("Corrections file", key="corrections_path",
                         value=str(limits.corrections_dir() / f"{Path(schema).stem}.jsonl"))
    save, download = st.columns(2)
    if save.button("Save corrections", key="save_corrections", disabled=not lines):
        try:
            count = export.save_corrections(Path(path), lines, schema_file=schema_file)
        except MatextractError as exc:
            st.error(f"Not saved: {exc.message}" + (f"\n\nHint: {exc.hint}" if exc.hint else ""))
        else:
            st.success(f"Saved {len(lines)} line(s); {path} now holds {count} example(s). "
                       f"Train on them: `matextract finetune --task jsonl:{path} "
                       f"--out adapters/my-adapter`")
    download.download_button("Download corrections (JSONL)", export.to_jsonl(lines) or "",
                             file_name=f"corrections-{Path(schema).stem}.jsonl",
                             mime="application/jsonl", disabled=not lines,
                             key="download_corrections")
