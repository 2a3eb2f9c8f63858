"""A tiny document model (headings, paragraphs, tables, images) with Markdown and HTML renderers.

Both reports are rendered from the same blocks, so they never disagree. Written by hand rather than with a
templating library because the structure is four block types and the HTML must be one self-contained file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str
    css: str = ""  # "pass" / "fail" to colour a verdict


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    fail_rows: set[int] = field(default_factory=set)  # row indexes to highlight


@dataclass
class Image:
    path: Path  # a PNG, inlined in HTML; referenced relative to the report dir in Markdown
    alt: str


Block = Heading | Paragraph | Table | Image


def to_markdown(blocks: list[Block], base: Path) -> str:
    """GitHub-flavoured Markdown; images are linked relative to ``base`` (the report directory)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Table):
            out.append("| " + " | ".join(block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
        elif isinstance(block, Image):
            out.append(f"![{block.alt}]({block.path.relative_to(base)})")
        out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d1d1f;padding:0 1rem}
h1{font-size:1.7rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left}th{background:#f5f5f7}
tr.fail td{background:#fdecec}p.pass{font-size:1.2rem;color:#0a7d32;font-weight:600}
p.fail{font-size:1.2rem;color:#c00;font-weight:600}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
code{background:#f5f5f7;padding:0 .2rem}
"""


def _inline(text: str) -> str:
    """Escape, then render `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page: CSS inline, images embedded as base64 PNG data URIs."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = f' class="{block.css}"' if block.css else ""
            body.append(f"<p{css}>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.header)
            rows = []
            for i, row in enumerate(block.rows):
                css = ' class="fail"' if i in block.fail_rows else ""
                rows.append(f"<tr{css}>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode()
            body.append(f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">')
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
