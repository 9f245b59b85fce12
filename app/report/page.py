"""The page around the documents of an HTML report: inline style and script, no network.

The documents travel as JSON in a ``<script type="application/json">`` block; the script
puts one page of them (already rendered, already escaped HTML) into the DOM at a time, so a
report of thousands of documents opens as fast as one of twenty.
"""

from __future__ import annotations

import html
import json
from typing import Any

from extraction.confidence.levels import COLOURS

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1d1d1f; background: #f6f7f9; }
header { padding: 0.8rem 1.4rem; background: #fff; border-bottom: 1px solid #ddd;
  position: sticky; top: 0; z-index: 2; }
h1 { font-size: 1.25rem; margin: 0 0 0.2rem; }
.mx-totals { margin: 0 0 0.4rem; color: #555; }
.mx-legend span, .mx-conf { display: inline-block; padding: 0 0.4rem; border-radius: 0.25rem;
  margin-right: 0.3rem; font-size: 0.85rem; }
.mx-controls { display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap;
  margin-top: 0.5rem; }
.mx-controls input { min-width: 16rem; padding: 0.25rem 0.4rem; }
.mx-nav button { margin: 0 0.1rem; min-width: 2.2rem; padding: 0.15rem 0.4rem;
  cursor: pointer; }
.mx-nav button[aria-current] { font-weight: 700; background: #333; color: #fff; }
.mx-nav .mx-gap { padding: 0 0.3rem; }
main { padding: 0.8rem 1.4rem; }
section.mx-doc { background: #fff; border: 1px solid #ddd; border-radius: 0.5rem;
  padding: 0.6rem 1rem 0.8rem; margin-bottom: 1rem; }
section.mx-doc h2 { font-size: 1.05rem; margin: 0.2rem 0; word-break: break-all; }
.mx-num { color: #888; font-weight: 400; margin-right: 0.4rem; }
.mx-meta { color: #666; font-size: 0.85rem; margin: 0 0 0.4rem; }
.mx-notice { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.3rem 0.6rem; }
.mx-errors { background: #fdecea; border-left: 4px solid #d33; padding: 0.3rem 0.6rem 0.3rem
  1.6rem; }
.mx-cols { display: flex; gap: 1rem; align-items: flex-start; flex-wrap: wrap; }
.mx-text { flex: 3 1 30rem; white-space: pre-wrap; line-height: 1.7; max-height: 32rem;
  overflow-y: auto; padding: 0.5rem 0.7rem; border: 1px solid #e3e3e3; border-radius: 0.4rem; }
.mx-excerpt { margin: 0 0 0.6rem; }
.mx-record { flex: 2 1 20rem; }
.mx-record h3 { font-size: 0.95rem; margin: 0.2rem 0; }
.mx-record table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
.mx-record td { border-bottom: 1px solid #eee; padding: 0.15rem 0.3rem; vertical-align: top; }
.mx-record tr[data-path] { cursor: pointer; }
.mx-record tr[data-path]:hover { background: #f0f4ff; }
.mx-field { color: #555; font-family: ui-monospace, monospace; font-size: 0.82rem; }
.mx-miss { color: #b00020; font-size: 0.82rem; }
.mx-rv { color: #1a56db; font-size: 0.82rem; }
mark.mx { color: inherit; border-radius: 0.2rem; padding: 0 0.1rem; }
mark.mx.mx-reviewed { box-shadow: inset 0 -2px 0 #1a56db; }
mark.mx.mx-focus { outline: 2px solid #d33; }
.mx-page { display: block; text-align: center; font-size: 0.75rem; color: #888;
  border-top: 1px dashed #bbb; margin: 0.4rem 0; }
details { margin-top: 0.4rem; font-size: 0.85rem; }
details pre { white-space: pre-wrap; background: #f6f6f6; padding: 0.4rem; }
""" + "".join(f".c-{name} {{ background: {colour}; }}\n" for name, colour in COLOURS.items())

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("mx-data").textContent);
  var docs = data.documents, size = data.page_size;
  var list = document.getElementById("mx-docs"), shown = document.getElementById("mx-shown");
  var filter = document.getElementById("mx-filter"), order = document.getElementById("mx-order");
  var view = docs, page = 0;

  function arrange() {
    var q = filter.value.trim().toLowerCase();
    view = docs.filter(function (d) { return !q || d.source.toLowerCase().indexOf(q) >= 0; });
    if (order.value === "low") {
      view = view.slice().sort(function (a, b) {
        var x = a.min === null ? 2 : a.min, y = b.min === null ? 2 : b.min;
        return x - y || a.n - b.n;
      });
    }
    page = 0;
    draw();
  }

  function numbers(count) {  // first, last and the pages around the current one
    var out = [];
    for (var i = 0; i < count; i++) {
      if (i === 0 || i === count - 1 || Math.abs(i - page) <= 2) out.push(i);
      else if (out[out.length - 1] !== -1) out.push(-1);
    }
    return out;
  }

  function button(label, target, current) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.page = String(target);
    if (current) b.setAttribute("aria-current", "page");
    return b;
  }

  function draw() {
    var count = Math.max(1, Math.ceil(view.length / size));
    page = Math.min(Math.max(page, 0), count - 1);
    var from = page * size, chunk = view.slice(from, from + size);
    list.innerHTML = chunk.map(function (d) { return d.html; }).join("");
    shown.textContent = view.length === 0 ? "no document matches" :
      "documents " + (from + 1) + "\u2013" + (from + chunk.length) + " of " + view.length +
      (view.length < docs.length ? " (filtered from " + docs.length + ")" : "");
    document.querySelectorAll(".mx-nav").forEach(function (nav) {
      nav.textContent = "";
      if (count < 2) return;
      if (page > 0) nav.appendChild(button("\u2039 previous", page - 1, false));
      numbers(count).forEach(function (i) {
        if (i < 0) {
          var gap = document.createElement("span");
          gap.className = "mx-gap";
          gap.textContent = "\u2026";
          nav.appendChild(gap);
        } else nav.appendChild(button(String(i + 1), i, i === page));
      });
      if (page < count - 1) nav.appendChild(button("next \u203a", page + 1, false));
    });
  }

  function focus(row) {  // a value clicked in the record: its marks in the text stand out
    var path = row.dataset.path, section = row.closest("section");
    var first = null;
    section.querySelectorAll("mark.mx").forEach(function (mark) {
      var hit = mark.dataset.path === path ||
        (mark.dataset.also || "").split(" ").indexOf(path) >= 0;
      mark.classList.toggle("mx-focus", hit);
      if (hit && first === null) first = mark;
    });
    if (first) first.scrollIntoView({block: "nearest"});
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-page], tr[data-path]");
    if (target === null) return;
    if (target.tagName === "TR") { focus(target); return; }
    page = Number(target.dataset.page);
    draw();
    window.scrollTo(0, 0);
  });
  filter.addEventListener("input", arrange);
  order.addEventListener("change", arrange);
  arrange();
})();
"""


def embed_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``</`` and ``<!--`` cannot end or bend it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\u0021--")


def page(*, title: str, header: str, documents: list[dict[str, Any]], page_size: int) -> str:
    """The whole report: ``header`` (trusted HTML) above the paged ``documents``."""
    data = embed_json({"page_size": page_size, "documents": documents})
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
{header}
<div class="mx-controls">
<input id="mx-filter" type="search" placeholder="filter by source name"
 aria-label="filter by source name">
<label>order <select id="mx-order"><option value="file">as in the file</option>
<option value="low">lowest confidence first</option></select></label>
<span id="mx-shown"></span>
<nav class="mx-nav" aria-label="pages"></nav>
</div>
</header>
<main>
<noscript><p class="mx-notice">This report needs JavaScript to show its documents.</p></noscript>
<div id="mx-docs"></div>
<nav class="mx-nav" aria-label="pages"></nav>
</main>
<script type="application/json" id="mx-data">{data}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
