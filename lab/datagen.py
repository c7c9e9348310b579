"""Grow a legacy source database to a given size, fast: the large table a department's
system accumulates (filed records), written by COPY in large blocks.

The table has a serial key, so its sequence moves too. The rows are deterministic apart
from their ids, so two databases grown alike compare alike. Used by `tricenter lab
legacy-data` and by `benchmarks/migrate.py`."""
from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

TABLE = "archive_record"
# One COPY block: enough rows that each write is large, few enough to check the size often.
BLOCK_ROWS = 5000
ROUND_BLOCKS = 4  # blocks per transaction: ~9 MB, so the size overshoots by less than that
ROW_BODY = 360  # bytes of text per row: a filed form's content
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
         "kib": 2**10, "mib": 2**20, "gib": 2**30}


class BadSize(ValueError):
    """A size that is not a number with a unit; the message shows the accepted forms."""


@dataclass
class Grown:
    table: str
    rows_added: int
    size_bytes: int  # the database's size afterwards

    def as_json(self) -> dict:
        return {"table": self.table, "rows_added": self.rows_added,
                "size_bytes": self.size_bytes}


def parse_size(text: str) -> int:
    """'100MB', '1GB', '512MiB', '2000000' → bytes (MB = 10^6 bytes, MiB = 2^20)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = found.group(2).lower() if found else None
    if found is None or unit not in UNITS:
        raise BadSize(f"size {text!r}: give a number and a unit, e.g. 100MB, 1GB or 512MiB")
    return int(float(found.group(1)) * UNITS[unit])


def create_sql(table: str = TABLE) -> sql.Composed:
    return sql.SQL("""CREATE TABLE IF NOT EXISTS {table} (
    id        bigserial PRIMARY KEY,
    filed_on  date NOT NULL,
    office    text NOT NULL,
    body      text NOT NULL)""").format(table=sql.Identifier(table))


def block(rows: int = BLOCK_ROWS) -> bytes:
    """COPY text for `rows` rows (filed_on, office, body); ids come from the sequence."""
    lines = []
    for n in range(rows):
        day = f"20{10 + n % 15:02d}-{1 + n % 12:02d}-{1 + n % 28:02d}"
        body = (f"form {n:06d} " + "record text " * 40)[:ROW_BODY]
        lines.append(f"{day}\toffice {n % 17}\t{body}\n")
    return "".join(lines).encode()


def database_size(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def grow(conninfo: dict, size_bytes: int, table: str = TABLE) -> Grown:
    """Add rows to `table` (created if missing, owned by the login) until the database is
    at least `size_bytes`; a database already that big is left as it is."""
    data = block()
    added = 0
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(create_sql(table))
        copy = sql.SQL("COPY {table} (filed_on, office, body) FROM STDIN").format(
            table=sql.Identifier(table))
        # A commit per round: a crash keeps what was written, and the size check sees it.
        while database_size(conn) < size_bytes:
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as out:
                for _ in range(ROUND_BLOCKS):
                    out.write(data)
            added += ROUND_BLOCKS * BLOCK_ROWS
        conn.execute(sql.SQL("ANALYZE {table}").format(table=sql.Identifier(table)))
        return Grown(table, added, database_size(conn))
