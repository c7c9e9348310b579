"""What a source PostgreSQL holds and whether it can be migrated by logical replication.

`DISCOVERY_SQL` runs read-only on the source; `problems()` turns a discovery into the
precheck's findings (pure, so every rule is unit-tested without a database)."""
from __future__ import annotations

from typing import Any

# Each query returns one JSON value; psql -At prints it on one line.
DISCOVERY_SQL: dict[str, str] = {
    "version": "SELECT to_json(current_setting('server_version'))",
    "wal_level": "SELECT to_json(current_setting('wal_level'))",
    "size_bytes": "SELECT to_json(pg_database_size(current_database()))",
    "tables": """
        SELECT coalesce(json_agg(json_build_object(
                 'name', format('%I.%I', n.nspname, c.relname),
                 'rows_estimate', greatest(c.reltuples, 0)::bigint,
                 'bytes', pg_total_relation_size(c.oid),
                 'primary_key', EXISTS (SELECT 1 FROM pg_constraint k
                                        WHERE k.conrelid = c.oid AND k.contype = 'p'),
                 'replica_identity', c.relreplident::text) ORDER BY n.nspname, c.relname), '[]')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%'""",
    "sequences": """
        SELECT coalesce(json_agg(format('%I.%I', schemaname, sequencename)
                                 ORDER BY schemaname, sequencename), '[]')
        FROM pg_sequences""",
    "extensions": """
        SELECT coalesce(json_agg(json_build_object('name', extname, 'version', extversion)
                                 ORDER BY extname), '[]')
        FROM pg_extension WHERE extname <> 'plpgsql'""",
    "large_objects": "SELECT to_json(count(*)) FROM pg_largeobject_metadata",
}


def discovery_query() -> str:
    """One statement returning the whole discovery as a JSON object."""
    fields = ", ".join(f"'{key}', ({sql.strip()})" for key, sql in DISCOVERY_SQL.items())
    return f"SELECT json_build_object({fields})"


def problems(discovery: dict[str, Any]) -> list[dict[str, str]]:
    """Why logical replication would lose or refuse something; each with the fix."""
    found: list[dict[str, str]] = []
    if discovery.get("wal_level") != "logical":
        found.append({"check": "wal_level", "subject": "server",
                      "problem": f"wal_level is {discovery.get('wal_level')}, not logical",
                      "fix": "ALTER SYSTEM SET wal_level = logical, then restart the source"})
    major = str(discovery.get("version", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 10:
        found.append({"check": "version", "subject": "server",
                      "problem": f"PostgreSQL {discovery.get('version')} has no logical "
                                 "replication", "fix": "upgrade the source to 10 or later, or "
                                 "migrate by dump and restore"})
    for table in discovery.get("tables", []):
        if not table["primary_key"] and table["replica_identity"] != "f":
            found.append({"check": "replica_identity", "subject": table["name"],
                          "problem": "no primary key: its updates and deletes cannot be "
                                     "replicated", "fix": f"add a primary key, or ALTER TABLE "
                                     f"{table['name']} REPLICA IDENTITY FULL"})
    if discovery.get("large_objects", 0):
        found.append({"check": "large_objects", "subject": "pg_largeobject",
                      "problem": f"{discovery['large_objects']} large objects: logical "
                                 "replication does not carry them",
                      "fix": "move them into bytea columns, or copy them at cutover by "
                             "pg_dump --large-objects"})
    return found


def summary(discovery: dict[str, Any], files: dict[str, Any] | None = None) -> dict[str, Any]:
    """The figures a person reads first: what the discovery found, in one flat mapping."""
    tables = discovery.get("tables", [])
    return {"version": discovery.get("version"), "size_bytes": discovery.get("size_bytes"),
            "tables": len(tables),
            "tables_without_primary_key": [t["name"] for t in tables if not t["primary_key"]],
            "sequences": len(discovery.get("sequences", [])),
            "extensions": [e["name"] for e in discovery.get("extensions", [])],
            "large_objects": discovery.get("large_objects", 0),
            "files": files or {}}
