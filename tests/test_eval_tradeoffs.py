"""The accuracy-size-speed table and chart: which configurations are on the Pareto front."""

from __future__ import annotations

from eval.tradeoffs import pareto_front, plot_tradeoffs, points, tradeoff_table


def _row(model, f1, parameters, seconds, peak, precision="q8_0", backend="llamacpp",
         published=False, **options):
    return {"model": model, "adapter": None, "options": options, "published": published,
            "headline_f1": {"strict": f1, "normalised": None}, "parameters": parameters,
            "seconds_per_example": seconds, "peak_rss_mb": peak, "precision": precision,
            "backend": backend}


ROWS = [
    _row("small", 0.55, 135e6, 0.3, 900),                   # fastest, lightest
    _row("small", 0.55, 135e6, 0.4, 1500, precision="float32"),  # beaten by the row above
    _row("medium", 0.62, 270e6, 0.5, 1200),                 # more accurate, costs more
    _row("large", 0.40, 1.5e9, 2.0, 3000),                  # beaten on every axis
    _row("GPT-3", 0.73, 175e9, None, None, precision=None, backend=None, published=True),
]


def test_front_holds_exactly_the_configurations_nothing_beats():
    front = pareto_front(points(ROWS))
    assert [(p.label, p.weights) for p in front] == [("small", "q8_0 (llamacpp)"),
                                                     ("medium", "q8_0 (llamacpp)")]
    # records/min is derived from seconds per example
    assert points(ROWS)[0].records_per_minute == 200.0


def test_table_and_chart_show_every_configuration(tmp_path):
    table = tradeoff_table(ROWS)
    lines = table.splitlines()[2:]
    assert len(lines) == len(ROWS)
    assert lines[0].startswith("| 1 | GPT-3 | published | 175B | 0.730 | – | – |")
    assert sum("**yes**" in line for line in lines) == 2
    assert "| 5 | large | q8_0 (llamacpp) | 1.5B | 0.400 | 30.0 | 3,000 |  |" in table
    path = plot_tradeoffs(ROWS, tmp_path / "doping-tradeoffs.png", "doping")
    assert path.stat().st_size > 10_000
