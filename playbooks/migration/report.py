"""The wave report: per system, the write downtime, rows and bytes moved, verification
and who approved the cutover — Markdown for the review, HTML for people who read it in a
browser. Built from the records alone, so it can be rebuilt at any time."""
from __future__ import annotations

from html import escape

from playbooks.migration.record import MigrationRecord

COLUMNS = ("system", "state", "write downtime (s)", "rows", "bytes", "verified", "approved by")


def row(record: MigrationRecord) -> list[str]:
    tables = (record.verification or {}).get("tables", [])
    rows = sum(t["target_rows"] or 0 for t in tables) if tables else None
    moved = (record.replication or {}).get("bytes")
    downtime = record.cutover_downtime_seconds
    return [record.system, record.state.value, "-" if downtime is None else f"{downtime:.2f}",
            "-" if rows is None else str(rows), "-" if moved is None else str(moved),
            "yes" if record.verified else "no", record.approved_by or "-"]


def markdown(wave: int, records: list[MigrationRecord]) -> str:
    lines = [f"# Migration wave {wave}", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row(r)) + " |"
              for r in records]
    return "\n".join(lines) + "\n"


def html(wave: int, records: list[MigrationRecord]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row(r)) + "</tr>"
                   for r in records)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Migration wave {wave}"
            f"</title></head><body><h1>Migration wave {wave}</h1><table><thead><tr>{head}"
            f"</tr></thead><tbody>{body}</tbody></table></body></html>\n")
