"""Results and review: the records table, the values to review (lowest confidence first),
the source with its evidence, the editor, the Reflexion trace, timings, and exports."""

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
from extraction.confidence.levels import level
from extraction.errors import MatextractError
from extraction.schemas import get_schema

QUEUE_HEIGHT = 280  # pixels: about seven values; the queue table scrolls


def render(results: list[DocumentResult]) -> None:
    rows = table_rows(results)
    st.subheader("Records")
    st.caption("Click a row to see where its values were found. Status: pending until you "
               "accept or reject it; only accepted records are exported.")
    table = pd.DataFrame(rows).drop(columns=["key"])
    event = st.dataframe(table, key="records_table", on_select="rerun",
                         selection_mode="single-row", hide_index=True, width="stretch",
                         column_config={"lowest confidence": st.column_config.NumberColumn(
                             format="%.2f")})
    clicked = _clicked(event)
    _queue(results, rows)
    chosen = _synced_choice("Record", list(range(len(rows))), [
        f"{r['document']} · record {r['record']}" if r["record"] else
        f"{r['document']} · no record" for r in rows], clicked, key="record_choice")
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


def _clicked(event: Any) -> list[int]:
    return list(getattr(getattr(event, "selection", None), "rows", []))


def _synced_choice(label: str, options: list[Any], labels: list[str], clicked: list[int], *,
                   key: str) -> Any:
    """The option picked by a click on its table row or in the select box (kept in sync)."""
    state = st.session_state
    if clicked and clicked != state.get(f"_{key}_clicked") and clicked[0] < len(options):
        state[key] = options[clicked[0]]
    state[f"_{key}_clicked"] = clicked
    if state.get(key) not in options:  # gone: reviewed, or a new run
        state[key] = options[0]
    names = dict(zip(options, labels))
    return st.selectbox(label, options, format_func=names.__getitem__, key=key)


def _queue(results: list[DocumentResult], rows: list[dict[str, Any]]) -> None:
    """Every value not reviewed yet, lowest confidence first; the chosen one can be accepted
    or corrected."""
    queue = review.review_queue(results)
    st.subheader("Values to review")
    for notice in st.session_state.pop("queue_notices", []):
        st.warning(notice)
    if not queue:
        st.caption("Every value of the records not rejected has been reviewed.")
        return
    st.caption(f"{len(queue)} value(s) nobody has reviewed yet, lowest confidence first "
               "(values without a confidence last). Accepting or correcting a value takes "
               "it off this list and sets its confidence to 1; the record's status stays.")
    table = pd.DataFrame([{"value": q.evidence.value, "confidence": q.evidence.confidence,
                           "band": level(q.evidence.confidence),
                           "in the source": q.evidence.grounded, "document": q.document,
                           "field": str(q.evidence.where)} for q in queue])
    event = st.dataframe(
        table, key="queue_table", on_select="rerun", selection_mode="single-row",
        hide_index=True, width="stretch", height=min(QUEUE_HEIGHT, 38 + 35 * len(queue)),
        column_config={"confidence": st.column_config.ProgressColumn(
            format="%.2f", min_value=0.0, max_value=1.0)})
    keys = [q.key for q in queue]
    chosen = _synced_choice("Value", keys, [
        f"{q.evidence.value} · {q.document} · {q.evidence.where}" for q in queue],
        _clicked(event), key="queue_choice")
    item = queue[keys.index(chosen)]
    result = next(r for r in results if r.key == item.result)
    where = item.evidence.where
    with st.container(border=True):
        st.html(highlight.value_chip(item.evidence.value, item.evidence.confidence))
        st.caption(f"{item.document} · `{where}` · confidence "
                   f"{highlight.confidence_text(item.evidence.confidence)} · "
                   + ("found in the source" if item.evidence.grounded else
                      "**not found in the source**"))
        for sentence in list(dict.fromkeys(s.sentence for s in item.evidence.spans
                                           if s.sentence))[:2]:
            st.text(sentence)
        fixed = st.text_input("Correct value", value=item.evidence.value,
                              key=f"fix:{item.key}",
                              help="the right value; for an item of a list, nothing removes it")
        accept, save, show = st.columns(3)
        if accept.button("Accept value", key="accept_value", type="primary",
                         help="the value is right as it is"):
            review.accept_value(result, where)
            st.rerun()
        if save.button("Save correction", key="correct_value"):
            checked = review.correct_value(result, where, fixed, get_schema(result.schema_ref))
            if checked.valid:
                _restart_editor(result, where.record)
                st.session_state["queue_notices"] = [
                    message for messages in checked.problems.values() for message in messages]
                st.rerun()
            st.error("Not saved: " + "\n\n".join(
                message for messages in checked.errors.values() for message in messages))
        row = next(i for i, r in enumerate(rows)
                   if r["key"] == result.key and r["record"] == where.record + 1)
        show.button("Show its record", key="show_value", on_click=_show_row, args=(row,),
                    help="in the source and the editor below")


def _show_row(row: int) -> None:
    st.session_state["record_choice"] = row


def _restart_editor(result: DocumentResult, position: int) -> None:
    """The record's editors start again from its current record (a keyed widget keeps what
    was typed in it, not what the record now holds)."""
    versions = st.session_state.setdefault("edit_versions", {})
    versions[(result.key, position)] = versions.get((result.key, position), 0) + 1


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
    by_confidence = st.radio(
        "Colour the values by", ["field", "confidence"], horizontal=True, key="mark_colours",
        help="either way, low-confidence values are underlined and every value's confidence "
             "is in its tooltip") == "confidence"
    legend = highlight.band_legend() if by_confidence else highlight.legend(
        {k: v for k, v in colours.items() if any(m.field == k for m in marks)})
    if legend:
        st.html(legend)
    st.html(highlight.render(result.document.text, marks, focus=position,
                             pages=result.document.pages, field_colours=colours,
                             missing=missing,
                             confidence={str(e.where): e.confidence for e in result.evidence},
                             reviewed=result.reviewed, by_confidence=by_confidence))
    if position is None:
        return
    spans = [{"value": item.where.path, "found": span.text, "match": span.match,
              "page": span.page, "offsets": f"{span.start}-{span.end}",
              "confidence": item.confidence, "reviewed": str(item.where) in result.reviewed,
              "sentence": span.sentence or ""}
             for item in result.evidence_of(position) for span in item.spans]
    spans += [{"value": item.where.path, "found": "not found in the source",
               "match": "none", "page": None, "offsets": "", "confidence": item.confidence,
               "reviewed": str(item.where) in result.reviewed, "sentence": item.value}
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
    if any(f.kind == "table" for f in fields):
        st.caption(f"Tables: one row per entry; add a row at the bottom, delete one with its "
                   f"check box; several items in one cell are separated by "
                   f"'{review.ITEM_SEPARATOR}'.")
    editors: dict[str, Any] = {}
    initials: dict[str, Any] = {}
    slots = {}
    for f in fields:
        initial = initials[f.name] = review.to_editor(f, item.current.get(f.name))
        key = f"{base}:{f.name}"
        if f.kind == "bool":
            editors[f.name] = st.checkbox(f.name, value=initial, key=key, help=f.help)
        elif f.kind == "table":
            st.caption(f.name, help=f.help)
            editors[f.name] = st.data_editor(initial, key=key, num_rows="dynamic",
                                             hide_index=True, width="stretch")
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
    # An edit is what differs from the editors' own first content: showing a value may
    # already change it (an absent optional list reads back as []), which is no edit.
    if checked.valid and checked.record not in (
            item.current, review.check(spec, fields, initials, item.current).record):
        if any(f.kind == "table" and checked.record.get(f.name) != item.current.get(f.name)
               for f in fields):
            # a table editor keeps its edits as row deltas: it restarts from the new record
            _restart_editor(result, position)
        review.edit_record(result, position, checked.record)
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
    if reset.button("Reset", key=f"reset:{base}",
                    help="back to the model's output, its values unreviewed",
                    disabled=not item.edited and not result.reviewed_of(position)):
        review.reset_record(result, position)
        _restart_editor(result, position)
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
