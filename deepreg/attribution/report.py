"""A self-contained HTML report: sections of text, tables and figures (PNG embedded as data URIs).

Embedding keeps the report one file that opens anywhere: from the MLflow UI's artifact view, a
browser, or headless Chromium.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #222; line-height: 1.4; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; border-bottom: 1px solid #ccc; margin-top: 28px; }
h3 { font-size: 15px; margin-bottom: 4px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0 14px 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.meta { color: #555; font-size: 13px; } .note { color: #444; font-size: 13px; max-width: 1000px; }
.pass { color: #117733; font-weight: bold; } .fail { color: #aa3377; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
.checks td:nth-child(2), .checks td:nth-child(3) { text-align: left; }
"""


class Report:
    """Collects sections; `write(path)` renders them."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        anchor = "".join(c if c.isalnum() else "-" for c in text.lower())
        self.parts.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')

    def text(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def html(self, fragment: str) -> None:
        self.parts.append(fragment)

    def extend(self, other: "Report") -> None:
        """Append another report's parts (a section written on its own)."""
        self.parts.extend(other.parts)

    def table(self, frame: pd.DataFrame | None, *, max_rows: int = 25, floatfmt: str = "{:.4g}", caption: str = "",
              css: str = "") -> None:
        if frame is None or len(frame) == 0:
            self.text(f"{caption}: nothing to show." if caption else "Nothing to show.")
            return
        shown = frame.head(max_rows)
        table_html = shown.to_html(index=False, float_format=lambda v: floatfmt.format(v), border=0, escape=True,
                                   classes=css or None)
        if caption:
            self.parts.append(f'<p class="meta">{html.escape(caption)}'
                              + (f" (first {max_rows} of {len(frame)} rows)" if len(frame) > max_rows else "") + "</p>")
        self.parts.append(table_html)

    def figure(self, path: Path | None, caption: str = "") -> None:
        if path is None or not Path(path).is_file():
            return
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        self.parts.append(f'<figure><img alt="{html.escape(caption or Path(path).name)}" '
                          f'src="data:image/png;base64,{data}"/>'
                          + (f'<figcaption class="meta">{html.escape(caption)}</figcaption>' if caption else "")
                          + "</figure>")

    def checks(self, rows: list[dict]) -> None:
        """A table of checks: name, what was measured, and pass / fail."""
        body = []
        for row in rows:
            status = row.get("passed")
            label = "" if status is None else ('<span class="pass">pass</span>' if status else '<span class="fail">fail</span>')
            body.append(f"<tr><td>{html.escape(row['check'])}</td><td>{html.escape(str(row['result']))}</td>"
                        f"<td>{html.escape(str(row.get('criterion', '')))}</td><td>{label}</td></tr>")
        self.parts.append('<table class="checks"><tr><th>check</th><th>result</th><th>criterion</th><th></th></tr>'
                          + "".join(body) + "</table>")

    def render(self) -> str:
        return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(self.title) + "</title>"
                f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
                f"<p class='meta'>{html.escape(self.subtitle)}</p>" + "\n".join(self.parts) + "</body></html>")

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(self.render(), encoding="utf-8")
        return path
