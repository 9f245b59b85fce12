"""The extract page: options, input, and the run (progress per document, cancel).

Everything here gathers choices and calls the pipeline; no extraction logic of its own.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st
from pydantic import ValidationError

from app.web import limits
from app.web.state import Job
from extraction.documents import loading as documents
from extraction import models
from extraction.errors import DocumentError, MatextractError
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.schemas import builtin_names, get_schema
from extraction.settings import home_dir

MODEL_FOLDER = "Local model folder…"
ADAPTER_AUTO, ADAPTER_NONE, ADAPTER_FOLDER = "auto", "none", "Adapter folder…"
SCHEMA_UPLOAD = "Upload a JSON Schema…"
SOURCES = ("Upload files", "Paste text", "Sample documents")


# --- the model, once per process ----------------------------------------------------------------

def _release_model(entry: tuple[models.LoadedModel, float]) -> None:
    models.unload(entry[0])  # the registry keeps its own reference: drop it too


@st.cache_resource(max_entries=2, on_release=_release_model,
                   show_spinner="Loading the model (once; later runs reuse it)…")
def cached_model(model: str, device: str | None, precision: str, adapter: str | None,
                 backend: str) -> tuple[models.LoadedModel, float]:
    started = time.perf_counter()
    loaded = models.load(model, device=device, precision=precision, adapter=adapter,
                         backend=backend)
    return loaded, time.perf_counter() - started


@st.cache_resource(max_entries=2, show_spinner="Preparing the schema grammar…")
def cached_extractor(config_json: str) -> Extractor:
    config = ExtractorConfig.model_validate_json(config_json)
    loaded, _ = cached_model(config.model, config.device, config.precision, config.adapter,
                             config.backend)
    return Extractor(config, loaded=loaded)


@st.cache_resource
def model_lock() -> threading.Lock:
    """One extraction at a time across browser tabs: they share the model and the CPU."""
    return threading.Lock()


# --- sidebar: schema, model, options -----------------------------------------------------------

def _default(name: str) -> Any:
    """The sidebar starts from ExtractorConfig's own defaults (declared once, there)."""
    return ExtractorConfig.model_fields[name].default


def _help(name: str) -> str:
    return ExtractorConfig.model_fields[name].description or ""


def _bounds(name: str) -> tuple[int, int | None]:
    """(min, max) of an integer option, from the field's own constraints."""
    low, high = 0, None
    for rule in ExtractorConfig.model_fields[name].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high


def sidebar_config() -> ExtractorConfig | None:
    """The run's settings from the sidebar; None (with the reason shown) when unusable."""
    with st.sidebar:
        st.header("Schema")
        schema_ref = _schema_picker()
        st.header("Model")
        model = _model_picker()
        adapter = _adapter_picker(model, schema_ref)
        precision = st.selectbox(
            "Precision", models.PRECISIONS, key="precision",
            help="auto: float32 on CPU (bf16 is slow on most CPUs), bfloat16 on CUDA. "
                 "int8: dynamic quantization, CPU only, faster decoding.")
        backend = st.selectbox("Backend", models.BACKENDS, key="backend",
                               help=_help("backend"))
        device = st.selectbox("Device", ("auto", "cpu", "cuda"), key="device")
        with st.expander("Pipeline options", expanded=False):
            retrieval = st.radio("Retrieval", ("auto", "on", "off"), horizontal=True,
                                 index=("auto", "on", "off").index(_default("retrieval")),
                                 key="retrieval", help=_help("retrieval"))
            constrained = st.toggle("Constrained decoding", value=_default("constrained"),
                                    key="constrained", help=_help("constrained"))
            attempts = st.number_input("Reflexion attempts", *_bounds("max_attempts"),
                                       _default("max_attempts"), key="attempts",
                                       help=_help("max_attempts"))
            critique = st.checkbox("Self-critique", value=_default("self_critique"),
                                   key="self_critique", help=_help("self_critique"))
            strict = st.checkbox("Strict grounding", value=_default("strict_grounding"),
                                 key="strict_grounding", help=_help("strict_grounding"))
            few_shot = st.selectbox("Few-shot examples", ("all", 0, 1, 2, 3), key="few_shot",
                                    help=_help("few_shot"))
            budget = st.number_input("Token budget per answer", _bounds("max_new_tokens")[0],
                                     2048, _default("max_new_tokens"), step=64,
                                     key="max_new_tokens", help=_help("max_new_tokens"))
    if schema_ref is None or not model:
        return None
    try:
        return ExtractorConfig(
            model=model, adapter=adapter, precision=precision, backend=backend,
            device=None if device == "auto" else device, schema_name=schema_ref,
            constrained=constrained, max_attempts=int(attempts), self_critique=critique,
            strict_grounding=strict, retrieval=retrieval, max_new_tokens=int(budget),
            few_shot=None if few_shot == "all" else int(few_shot))
    except ValidationError as exc:
        st.sidebar.error(f"Invalid options: {exc.errors()[0]['msg']}")
        return None


def _schema_picker() -> str | None:
    choice = st.selectbox("Extract", [*builtin_names(), SCHEMA_UPLOAD], key="schema_choice",
                          help="doping: hosts, dopants and links; general: materials; "
                               "mof: metal-organic frameworks")
    if choice != SCHEMA_UPLOAD:
        spec = get_schema(choice)
    else:
        upload = st.file_uploader("JSON Schema file", type=["json"], key="schema_upload",
                                  max_upload_size=1,
                                  help=f"An object schema with 'properties' (at most "
                                       f"{limits.MAX_SCHEMA_KB} KB)")
        if upload is None:
            st.info("Upload a JSON Schema to use it.")
            return None
        data = upload.getvalue()
        if len(data) > limits.MAX_SCHEMA_KB * 1024:
            st.error(f"{upload.name}: larger than {limits.MAX_SCHEMA_KB} KB; a schema is small.")
            return None
        folder = home_dir() / "app" / "schemas" / hashlib.sha256(data).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (Path(upload.name).stem + ".json")
        path.write_bytes(data)
        try:
            spec = get_schema(str(path))
        except MatextractError as exc:
            st.error(f"{upload.name}: {exc.message}" + (f"\n\nHint: {exc.hint}" if exc.hint
                                                          else ""))
            return None
        choice = str(path)
    with st.expander(f"Fields of '{spec.name}'"):
        st.markdown("\n".join(f"- `{p}`: {d}" for p, d in spec.field_descriptions().items())
                    or "(no field descriptions)")
    return choice


def _model_picker() -> str:
    names = list(models.MODELS)
    default = os.environ.get(limits.ENV_MODEL) or models.DEFAULT_MODEL
    options = [*names, MODEL_FOLDER]

    def label(name: str) -> str:
        if name not in models.MODELS:
            return name
        spec = models.MODELS[name]
        state = ("ready" if models.is_prepared(spec) else "installed"
                 if models.is_installed(spec) else "not installed")
        return f"{name} ({spec.parameters}, {state})"

    choice = st.selectbox("Model", options, key="model_choice", format_func=label,
                          index=names.index(default) if default in names else len(names))
    if choice == MODEL_FOLDER:
        return st.text_input("Model folder", value="" if default in names else default,
                             key="model_folder",
                             help="any local Hugging Face model folder (config.json inside)"
                             ).strip()
    spec = models.MODELS[choice]
    if not models.is_installed(spec):
        st.warning(f"Not installed. Run: `matextract models install {choice}`")
    elif not models.is_prepared(spec):
        st.caption("The first run converts it once into the cache (under a minute).")
    return choice


def _adapter_picker(model: str | None, schema_ref: str | None) -> str | None:
    shipped = models.shipped_adapters()
    choice = st.selectbox("LoRA adapter", [ADAPTER_AUTO, ADAPTER_NONE, *shipped, ADAPTER_FOLDER],
                          key="adapter_choice",
                          help="trained with 'matextract finetune'; auto: the adapter shipped "
                               "for this model and schema, if any")
    if choice == ADAPTER_AUTO:
        found = models.default_adapter(model, schema_ref) if model and schema_ref else None
        st.caption(f"auto: {found}" if found else "auto: no shipped adapter for this model "
                   "and schema; the base model is used")
        return ADAPTER_AUTO
    if choice == ADAPTER_NONE:
        return None
    if choice == ADAPTER_FOLDER:
        return st.text_input("Adapter folder", key="adapter_folder").strip() or None
    return choice


# --- input --------------------------------------------------------------------------------------

def input_widgets() -> tuple[str, Any]:
    """(source kind, what the user gave) for the chosen input."""
    sources = SOURCES if limits.SAMPLES_DIR.is_dir() else SOURCES[:2]
    source = st.radio("Input", sources, horizontal=True, key="input_source",
                      label_visibility="collapsed")
    if source == "Paste text":
        return source, st.text_area("Text", height=200, max_chars=limits.MAX_PASTE_CHARS,
                                    key="paste_text",
                                    placeholder="Paste an abstract or a section of a paper…")
    if source == "Sample documents":
        samples = sorted(p.name for p in limits.SAMPLES_DIR.iterdir()
                         if p.suffix.lower() in limits.UPLOAD_TYPES)
        return source, st.multiselect("Samples", samples, default=samples[:1],
                                      key="sample_files")
    return source, _uploader()


def _uploader() -> list[Any]:
    # type= makes the browser refuse other files (Streamlit also refuses them server-side);
    # the size limit is per file and holds however the server was started.
    files = st.file_uploader("Documents", type=[s.lstrip(".") for s in limits.UPLOAD_TYPES],
                             accept_multiple_files=True, max_upload_size=limits.max_upload_mb(),
                             key="uploads", help=limits.limits_text())
    st.caption(limits.limits_text())
    return list(files or [])


def collect_documents(source: str, given: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    """(name, Document) pairs to extract from, and one message per input that cannot be."""
    found: list[tuple[str, Any]] = []
    problems: list[str] = []
    if source == "Paste text":
        try:
            found.append(("pasted text", documents.load_text(given or "", source="pasted text")))
        except DocumentError as exc:
            problems.append(f"pasted text: {exc.problem}. Hint: {exc.hint}")
    elif source == "Sample documents":
        for name in given or []:
            found += _load_file(limits.SAMPLES_DIR / name, name, problems)
    else:
        limit = limits.max_upload_mb() * 1024 * 1024
        with tempfile.TemporaryDirectory(prefix="matextract-upload-") as tmp:
            for upload in given:
                name = Path(upload.name).name or "upload"
                if upload.size > limit:
                    problems.append(f"{name}: {upload.size / 2**20:.1f} MB is over the "
                                    f"{limits.max_upload_mb()} MB limit per file")
                    continue
                path = Path(tmp) / name
                path.write_bytes(upload.getvalue())
                found += _load_file(path, name, problems)
    if len(found) > limits.MAX_DOCUMENTS:
        problems.append(f"{len(found)} documents: only the first {limits.MAX_DOCUMENTS} are "
                        "extracted in the app; use 'matextract extract --out' for the rest")
        found = found[:limits.MAX_DOCUMENTS]
    if not found and not problems:
        problems.append("nothing to extract: upload a file, paste text or pick a sample")
    return found, problems


def _load_file(path: Path, name: str, problems: list[str]) -> list[tuple[str, Any]]:
    try:
        loaded = documents.load(path)
    except DocumentError as exc:  # message without the temporary path
        problems.append(f"{name}: {exc.problem}" + (f". Hint: {exc.hint}" if exc.hint else ""))
        return []
    except Exception as exc:  # noqa: BLE001 - a parser bug must not end the session
        problems.append(f"{name}: could not be read ({type(exc).__name__}: {exc})")
        return []
    named = []
    for position, document in enumerate(loaded):
        label = f"{name}#{position}" if len(loaded) > 1 else name
        named.append((label, replace(document, source=label)))
    return named


# --- the run -----------------------------------------------------------------------------------

def run_job(job: Job) -> None:
    """Extract the job's pending documents one by one, each in its own status box.

    A click during extraction starts a new run of the page while this one is still inside
    the model; the job's state changes before the next Streamlit call, and the new run
    waits for the document in progress before it claims the next one.
    """
    config = ExtractorConfig.model_validate(job.config)
    try:
        loaded, seconds = cached_model(config.model, config.device, config.precision,
                                       config.adapter, config.backend)
        extractor = cached_extractor(config.model_dump_json())
    except MatextractError as exc:
        job.cancel()
        show_error("The model cannot be used", exc)
        return
    except Exception as exc:  # noqa: BLE001 - e.g. a folder transformers cannot load
        job.cancel()
        st.error(f"The model cannot be used: {type(exc).__name__}: {exc}")
        return
    st.session_state["model_load_s"] = round(seconds, 2)
    bar = st.progress(job.done / job.total, text=f"{job.done} of {job.total} documents")
    while job.running:
        if job.active is not None:
            with st.spinner(f"{job.active}: finishing the document in progress…"):
                job.wait_idle()
            bar.progress(job.done / job.total, text=f"{job.done} of {job.total} documents")
            continue
        claimed = job.claim()
        if claimed is None:
            continue
        name, document = claimed
        with st.status(f"{name}: extracting ({len(document.text):,} characters)…",
                       expanded=False) as status:
            extraction, error = None, None
            try:
                with model_lock():
                    extraction = extractor.extract(document).to_dict()
            except MatextractError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad document, not the session
                error = f"{type(exc).__name__}: {exc}"
            finally:
                job.finish(name, document, extraction, error)
            if extraction is not None:
                status.update(label=f"{name}: {len(extraction['records'])} record(s) in "
                                    f"{extraction['timings']['total_s']:.1f} s",
                              state="complete")
            else:
                status.update(label=f"{name}: failed", state="error")
                st.write(error)
        bar.progress(job.done / job.total, text=f"{job.done} of {job.total} documents")


def show_error(what: str, exc: MatextractError) -> None:
    st.error(f"{what}: {exc.message}" + (f"\n\nHint: {exc.hint}" if exc.hint else ""))
