"""``matextract show``: the HTML report builder (pure), the command, and the page in a real
headless Chromium (file:// URL, no server).

Results lines are written by hand (a doping record with confidences in every band), so no
model runs. Set MATEXTRACT_REPORT_SCREENSHOT=docs/report.png to refresh the README's
screenshot; otherwise it goes to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from app.report.html_report import ReportDocument, build_report, render_document, totals
from app.report.page import embed_json
from extraction.confidence.levels import COLOURS
from extraction.types import Extraction, sha256_text

TEXT = ("ZnO films doped with Al were grown by sputtering on glass at 300 °C. "
        "The Al-doped ZnO layers (AZO) reached 4 × 10<sup>-4</sup> Ω cm & 90% transmittance.")
RECORD = {"hosts": ["ZnO", "AZO"], "dopants": ["Al", "Mg"],
          "links": [{"host": "ZnO", "dopant": "Al"}]}
CONFIDENCE = {"records[0].hosts[0]": 0.95, "records[0].hosts[1]": 0.3,
              "records[0].dopants[0]": 0.65, "records[0].dopants[1]": 0.2,
              "records[0].links[0].host": 0.97, "records[0].links[0].dopant": 0.6}


def _spans(text: str, value: str) -> list[dict]:
    """Every exact occurrence of ``value`` in ``text``, as the evidence map holds it."""
    sentence = text.split(". ")[0] + "."
    return [{"start": m.start(), "end": m.end(), "page": 1, "text": value, "match": "exact",
             "sentence": sentence if m.start() < len(sentence) else text[len(sentence) + 1:]}
            for m in re.finditer(re.escape(value), text)]


def result_line(source: str, text: str = TEXT, record: dict | None = None,
                confidence: dict | None = None, **extra) -> dict:
    """A results line as ``Extraction.to_dict`` writes it, for ``text`` and ``record``."""
    record = RECORD if record is None else record
    confidence = CONFIDENCE if confidence is None else confidence
    draft = Extraction(source, sha256_text(text), {"name": "doping", "version": "1"},
                       {"name": "smollm2-135m", "adapter": "doping-smollm2"}, [record])
    keys = [str(item.where) for item in Extraction.from_dict(draft.to_dict()).evidence]
    evidence = {key: spans for key in keys
                for spans in [_spans(text, _value(record, key))] if spans}
    line = {**draft.to_dict(), "evidence": evidence,
            "confidence": {k: v for k, v in confidence.items() if k in keys},
            "ungrounded": [key for key in keys if key not in evidence]}
    return {**line, **extra}


def _value(record: dict, key: str):
    value = record
    for part in re.findall(r"[A-Za-z_]\w*|\d+", key.split(".", 1)[1]):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


def _document(line: dict, text: str | None = TEXT, notice: str | None = None) -> ReportDocument:
    return ReportDocument(Extraction.from_dict(line), text, ((0, len(text)),) if text else (),
                          notice)


def _marks(fragment: str) -> list[dict]:
    """Each <mark> of a fragment: its attributes and its text."""
    found = []
    for attrs, inner in re.findall(r"<mark ([^>]*)>([^<]*)</mark>", fragment):
        found.append({**dict(re.findall(r'([\w-]+)="([^"]*)"', attrs)), "text": inner})
    return found


def _text_part(fragment: str) -> str:
    return fragment.split('<div class="mx-text">')[1].split('<div class="mx-record">')[0]


# --- the builder (pure) ----------------------------------------------------------------------

def test_every_value_is_marked_where_it_was_found_with_its_band():
    fragment = render_document(_document(result_line("a.txt")))
    marks = _marks(_text_part(fragment))
    # "ZnO" twice, "Al" twice (also inside "Al-doped"), "AZO" once; Mg is nowhere.
    assert [m["text"] for m in marks] == ["ZnO", "Al", "Al", "ZnO", "AZO"]
    by_text = {m["text"]: m for m in marks}
    assert by_text["AZO"]["class"] == "mx c-low" and by_text["AZO"]["data-confidence"] == "0.3"
    assert by_text["Al"]["class"] == "mx c-medium"
    assert by_text["ZnO"]["class"] == "mx c-high"
    assert by_text["AZO"]["title"] == "hosts[1]: AZO · confidence 0.30"
    plain = re.sub(r"<[^>]+>", "", _text_part(fragment))
    assert plain == TEXT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    record = fragment.split('<div class="mx-record">')[1]
    assert re.search(r'data-path="records\[0\]\.dopants\[1\]">.*?Mg.*?c-low">0\.20.*?'
                     r"not found in the text", record)


def test_equal_spans_show_the_least_confident_value_and_list_all():
    fragment = render_document(_document(result_line("a.txt")))
    first_zno, first_al = _marks(_text_part(fragment))[:2]
    # hosts[0] (0.95) and links[0].host (0.97) share "ZnO": the less sure one shows
    assert first_zno["data-path"] == "records[0].hosts[0]"
    assert first_zno["data-also"] == "records[0].links[0].host"
    assert first_zno["title"] == ("hosts[0]: ZnO · confidence 0.95\n"
                                  "links[0].host: ZnO · confidence 0.97")
    assert first_al["data-path"] == "records[0].links[0].dopant"  # 0.6 < 0.65
    assert first_al["data-confidence"] == "0.6"


@pytest.mark.parametrize("first, second, middle", [
    (0.9, 0.4, ("records[0].hosts[1]", "mx c-low")),  # the less confident value shows
    (0.4, 0.9, ("records[0].hosts[0]", "mx c-low")),
    (0.7, 0.7, ("records[0].hosts[1]", "mx c-medium")),  # a tie: the shorter span
])
def test_nested_and_crossing_spans_never_nest_marks(first, second, middle):
    text = "Al-doped ZnO films"
    line = result_line("a.txt", text, {"hosts": ["Al-doped ZnO", "ZnO films"]},
                       {"records[0].hosts[0]": first, "records[0].hosts[1]": second})
    part = _text_part(render_document(_document(line, text)))
    assert "<mark" not in re.sub(r"<mark[^>]*>[^<]*</mark>", "", part)  # flat: no nesting
    pieces = [(m["text"], m["data-path"], m["class"]) for m in _marks(part)]
    assert [text for text, _, _ in pieces] == ["Al-doped ", "ZnO", " films"]
    assert pieces[1][1:] == middle
    assert pieces[0][1] == "records[0].hosts[0]" and pieces[2][1] == "records[0].hosts[1]"
    assert re.sub(r"<[^>]+>", "", part) == text


def test_text_and_values_are_escaped():
    text = 'Doped <script>alert("x")</script> & ZnO'
    line = result_line("<b>x</b>.txt", text, {"hosts": ["ZnO", "<img src=x>"], "dopants": [],
                                               "links": []}, {}, errors=["bad <i>thing</i>"])
    fragment = render_document(_document(line, text))
    assert "<script>" not in fragment and "&lt;script&gt;" in fragment
    assert "<img" not in fragment and "&lt;img src=x&gt;" in fragment
    assert "<b>" not in fragment and "<i>" not in fragment
    assert "bad &lt;i&gt;thing&lt;/i&gt;" in fragment  # document errors are shown
    assert _marks(_text_part(fragment))[0]["class"] == "mx c-unknown"  # no confidence


def test_embedded_json_cannot_close_its_script_element():
    line = result_line("x.txt", TEXT + " </script><!-- <script>")
    page = build_report([_document(line, TEXT + " </script><!-- <script>")])
    data = page.split('<script type="application/json" id="mx-data">')[1]
    body, rest = data.split("</script>", 1)
    assert "<!--" not in body and "</" not in body
    assert rest.lstrip().startswith("<script>")
    document = json.loads(body)["documents"][0]
    assert "&lt;/script&gt;&lt;!-- &lt;script&gt;" in document["html"]
    assert json.loads(embed_json({"a": "</b><!--"})) == {"a": "</b><!--"}


def test_page_is_self_contained_with_legend_and_totals():
    docs = [_document(result_line("a.txt")),
            _document(result_line("b.txt", reviewed=["records[0].hosts[1]"]))]
    page = build_report(docs, origin="results.jsonl")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from a network
    for name, colour in COLOURS.items():
        assert f".c-{name} {{ background: {colour}; }}" in page
    assert "high confidence ≥ 0.8" in page and "low &lt; 0.5" in page
    summary = totals(docs)
    assert (summary.documents, summary.values, summary.low, summary.ungrounded,
            summary.reviewed) == (2, 12, 3, 2, 1)  # reviewed AZO counts as certain
    reviewed = render_document(docs[1])
    azo = [m for m in _marks(_text_part(reviewed)) if m["text"] == "AZO"][0]
    assert azo["class"] == "mx c-high mx-reviewed" and "reviewed" in azo["title"]
    assert "✓ reviewed" in reviewed.split('<div class="mx-record">')[1]


def test_without_the_text_the_evidence_sentences_are_shown_with_a_notice():
    doc = _document(result_line("gone.txt"), None, "source file not found: gone.txt")
    fragment = render_document(doc)
    assert '<p class="mx-notice">source file not found: gone.txt</p>' in fragment
    excerpts = re.findall(r'<p class="mx-excerpt">(.*?)</p>', fragment, re.S)
    assert [re.sub(r"<[^>]+>", "", e) for e in excerpts] == [
        "ZnO films doped with Al were grown by sputtering on glass at 300 °C.",
        TEXT.split(". ", 1)[1].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")]
    assert [m["text"] for m in _marks(excerpts[0])] == ["ZnO", "Al"]
    assert totals([doc]).without_text == 1


def test_a_thousand_documents_render_quickly_into_a_linear_file():
    def report(count: int) -> tuple[str, float]:
        docs = [_document(result_line(f"papers/paper-{i}.txt", f"{TEXT} Sample {i}. " * 8),
                          f"{TEXT} Sample {i}. " * 8) for i in range(count)]
        began = time.perf_counter()
        return build_report(docs), time.perf_counter() - began

    small, _ = report(100)
    large, seconds = report(1000)
    assert seconds < 15, seconds
    per_document = (len(large) - len(small)) / 900
    assert per_document < 12 * len(f"{TEXT} Sample 1. " * 8)  # markup stays proportional
    assert len(large) < 10 * len(small)
    assert len(json.loads(large.split('id="mx-data">')[1].split("</script>")[0]
                          )["documents"]) == 1000


# --- the command -----------------------------------------------------------------------------


def _write_results(path: Path, lines: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
                    + tail, encoding="utf-8")
    return path


def test_show_writes_the_report_and_finds_sources(tmp_path: Path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "a.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "b.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "papers" / "changed.txt").write_text(TEXT + " Edited.", encoding="utf-8")
    (tmp_path / "papers" / "misread.txt").write_text(TEXT, encoding="utf-8")
    misread = result_line("papers/misread.txt")
    misread["evidence"]["records[0].hosts[1]"][0]["start"] += 1  # offsets of another text
    items = [{"text": "MgO doped with Fe."}, {"text": TEXT}]
    (tmp_path / "papers" / "abstracts.jsonl").write_text(
        "".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    results = _write_results(tmp_path / "results.jsonl", [
        result_line("papers/a.txt"), result_line("old/place/b.txt"),
        result_line("papers/changed.txt"), result_line("papers/abstracts.jsonl#1"),
        result_line("papers/gone.txt"), misread], tail='{"source": "torn')
    ran = cli("show", str(results), "--out", "report.html", "--sources", "moved")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == (
        "wrote report.html: 6 document(s), 36 value(s): 12 low confidence (< 0.5), "
        "6 not found in the text, 0 reviewed; 3 document(s) without their source text")
    assert "results.jsonl:7: last line cut short" in ran.stderr
    assert "source file not found: papers/gone.txt" in ran.stderr
    assert "changed since the extraction" in ran.stderr
    assert "does not match the evidence offsets" in ran.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    documents = json.loads(page.split('id="mx-data">')[1].split("</script>")[0])["documents"]
    with_text = ['class="mx-excerpt"' not in d["html"] for d in documents]
    assert with_text == [True, True, False, True, False, False]
    assert "also looked in moved" in documents[4]["html"]


@pytest.mark.parametrize("case, expected", [
    ("missing", "missing.jsonl: results file not found"),
    ("invalid line", "results.jsonl:2: not valid JSON"),
    ("not a result", "results.jsonl:1: not a result record (no 'sha256'"),
    ("empty", "results.jsonl: holds no result lines"),
    ("broken span", "results.jsonl:1: not a result record (KeyError: 'start')"),
    ("no output folder", "folder nowhere does not exist"),
])
def test_show_mistakes_are_one_line_errors(case: str, expected: str, tmp_path: Path, cli,
                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = json.dumps(result_line("a.txt"))
    contents = {"invalid line": f"{good}\n{{not json\n{good}\n",
                "not a result": '{"source": "a.txt", "schema": {}, "model": {}}\n',
                "empty": "\n",
                "broken span": json.dumps({**json.loads(good), "evidence": {
                    "records[0].hosts[0]": [{"end": 3}]}}) + "\n"}
    results = tmp_path / ("missing.jsonl" if case == "missing" else "results.jsonl")
    if case != "missing":
        results.write_text(contents.get(case, good + "\n"), encoding="utf-8")
    out = "nowhere/report.html" if case == "no output folder" else "report.html"
    ran = cli("show", results.name, "--out", out)
    assert ran.returncode == 2
    assert ran.stderr.startswith("error: ") and expected in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "nowhere").exists()


# --- in a real browser -----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _rgb(colour: str) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, 1)"


@pytest.mark.slow
def test_report_in_a_browser_colours_bands_and_pages(tmp_path: Path, cli, browser,
                                                     monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    monkeypatch.chdir(tmp_path)
    papers = tmp_path / "papers"
    papers.mkdir()
    lines = []
    for i in range(1, 26):  # 25 documents: two pages of 20
        text = TEXT if i % 5 else TEXT.replace("300 °C", f"{250 + i} °C")
        (papers / f"zno-{i:02}.txt").write_text(text, encoding="utf-8")
        reviewed = ["records[0].hosts[1]"] if i == 2 else []
        doubtful = {**CONFIDENCE, "records[0].hosts[1]": 0.05} if i == 17 else None
        lines.append(result_line(f"papers/zno-{i:02}.txt", text, confidence=doubtful,
                                 reviewed=reviewed))
    lines[2]["source"] = "papers/missing.txt"
    _write_results(tmp_path / "results.jsonl", lines)
    assert cli("show", "results.jsonl", "--out", "report.html").returncode == 0

    driver = browser
    driver.get((tmp_path / "report.html").as_uri())
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.mx-doc")) == 20)
    first = driver.find_elements(By.CSS_SELECTOR, "section.mx-doc")[0]
    marks = first.find_elements(By.CSS_SELECTOR, ".mx-text mark.mx")
    assert [m.text for m in marks] == ["ZnO", "Al", "Al", "ZnO", "AZO"]
    for mark in marks:
        band = mark.get_attribute("class").split()[1].removeprefix("c-")
        assert mark.value_of_css_property("background-color") == _rgb(COLOURS[band])
    assert {m.get_attribute("class").split()[1] for m in marks} == {"c-high", "c-medium",
                                                                      "c-low"}
    assert "source file not found: papers/missing.txt" in driver.find_elements(
        By.CSS_SELECTOR, "section.mx-doc")[2].text

    shot = tmp_path / "report.png"
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)  # let the fonts settle
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    if os.environ.get("MATEXTRACT_REPORT_SCREENSHOT"):
        target = Path(os.environ["MATEXTRACT_REPORT_SCREENSHOT"])
        if not target.is_absolute():
            target = Path(__file__).resolve().parents[1] / target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)

    # A value clicked in the record stands out in the text.
    first.find_element(By.CSS_SELECTOR, "tr[data-path='records[0].hosts[1]']").click()
    assert first.find_element(By.CSS_SELECTOR, "mark.mx-focus").text == "AZO"

    # The second page holds documents 21-25; the filter and the ordering work on all.
    driver.find_element(By.CSS_SELECTOR, "header .mx-nav button[data-page='1']").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.mx-doc")) == 5)
    headings = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "section.mx-doc h2")]
    assert headings[0].startswith("#21") and headings[0].endswith("zno-21.txt")
    assert "documents 21–25 of 25" in driver.find_element(By.ID, "mx-shown").text
    Select(driver.find_element(By.ID, "mx-order")).select_by_value("low")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "section.mx-doc h2").text
               .endswith("zno-17.txt"))
    assert "documents 1–20 of 25" in driver.find_element(By.ID, "mx-shown").text
    driver.find_element(By.ID, "mx-filter").send_keys("zno-1")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.mx-doc")) == 10)
    assert "documents 1–10 of 10 (filtered from 25)" in driver.find_element(
        By.ID, "mx-shown").text
