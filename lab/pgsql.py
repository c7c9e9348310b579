"""SQL the lab feeds to psql. Names and secrets go in as quoted identifiers and literals
(psycopg.sql), never pasted into the text, so no name can end a statement or a quote."""
from __future__ import annotations

from psycopg import sql


def owner_sql(user: str, db: str, password: str, replication: bool = False) -> str:
    """A login role and a database it owns."""
    return sql.SQL(
        "CREATE ROLE {user} LOGIN{replication} PASSWORD {password};\n"
        "CREATE DATABASE {db} OWNER {user};\n"
    ).format(user=sql.Identifier(user), db=sql.Identifier(db), password=sql.Literal(password),
             replication=sql.SQL(" REPLICATION" if replication else "")).as_string(None)


def set_role_sql(user: str) -> str:
    return sql.SQL("SET ROLE {user};\n").format(user=sql.Identifier(user)).as_string(None)
