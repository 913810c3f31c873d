"""`mograg eval --report DIR`: report.html with PNG plots (needs the ``plot`` extra)."""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mograg.errors import MissingExtraError

if TYPE_CHECKING:
    from mograg.eval.evaluate import EvalOutcome

TABLE_KEYS = ("recall", "precision", "iou", "answer_recall", "mrr", "token_recall",
              "figure_recall", "right_source", "p50_ms", "p99_ms")


def require_plotting() -> None:
    """Raise the one-line install hint now if the plot extra is missing (before any work)."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtraError("matplotlib", "plot", "mograg eval --report") from None
    return plt


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def write_report(outcome: EvalOutcome, directory: str | Path) -> Path:
    """Write report.html, results.json and plots into ``directory``; return the HTML path."""
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(outcome.results, indent=1))
    results = outcome.results
    systems = [s for s in results[0]["systems"] if s != "best_fixed"]
    budgets = [r["budget"] for r in results]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in systems:
        ys = [r["systems"][name]["recall"] for r in results]
        style = "-o" if name.startswith(("level:", "oracle")) else "--s"
        ax.plot(budgets, ys, style, label=name, markersize=4)
    ax.set_xlabel("token budget")
    ax.set_ylabel("evidence recall")
    ax.set_title("Recall vs budget")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "recall_vs_budget.png", dpi=120)
    plt.close(fig)

    detail = outcome.detail[0]
    counts = Counter(detail["oracle_choice"])
    names = [s for s in systems if s.startswith(("level:", "graph:"))]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(names, [counts.get(n, 0) for n in names])
    ax.set_ylabel("questions")
    ax.set_title(f"Oracle's chosen granularity (budget {budgets[0]})")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "oracle_choice.png", dpi=120)
    plt.close(fig)

    best = results[0]["systems"]["best_fixed"]["level"]
    per_q = detail["per_question"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(per_q[best], per_q["oracle"], s=8, alpha=0.5)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set_xlabel(f"best fixed ({best}) recall")
    ax.set_ylabel("oracle recall")
    ax.set_title("Per question")
    fig.tight_layout()
    fig.savefig(out / "best_fixed_vs_oracle.png", dpi=120)
    plt.close(fig)

    rows = []
    for r in results:
        for name, s in r["systems"].items():
            label = f"best_fixed ({s['level']})" if name == "best_fixed" else name
            cells = "".join(f"<td>{_fmt(s.get(k))}</td>" for k in TABLE_KEYS)
            rows.append(f"<tr><td>{r['budget']}</td><th scope='row'>{html.escape(label)}</th>"
                        f"{cells}</tr>")
    head = "".join(f"<th scope='col'>{k}</th>" for k in TABLE_KEYS)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>mograg eval report</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
th[scope=row]{{text-align:left}}img{{max-width:100%;margin:1em 0}}</style></head><body>
<h1>mograg eval report</h1>
<p>{results[0]['questions']} questions ({results[0]['skipped']} skipped), mode
{html.escape(str(results[0].get('mode')))}.</p>
<table><thead><tr><th scope="col">budget</th><th scope="col">system</th>{head}</tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<img src="recall_vs_budget.png" alt="Recall of every system as the token budget grows">
<img src="oracle_choice.png" alt="How often the oracle picks each granularity">
<img src="best_fixed_vs_oracle.png" alt="Per-question recall, best fixed level vs oracle">
</body></html>"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
