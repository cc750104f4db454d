"""Print the DDL that ``SQLModel.metadata.create_all`` runs for the current models, for one engine.

``python -m tests.recording.migrations.freeze_schema sqlite|postgresql`` (from the repository root). Run it at a
release to freeze that release's schema: the upgrade tests build "a database made by the released
code" from the frozen file, so the models may change afterwards without changing what is tested.
"""

from __future__ import annotations

import sys

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

import proxy.recording.store  # noqa: F401  (registers every table on SQLModel.metadata)

DIALECTS: dict[str, sa.Dialect] = {
    name: sa.make_url(url).get_dialect()()
    for name, url in (("sqlite", "sqlite://"), ("postgresql", "postgresql+psycopg://"))
}


def schema_ddl(dialect: sa.Dialect) -> list[str]:
    """The CREATE TABLE and CREATE INDEX statements, in the order ``create_all`` runs them."""
    statements = []
    for table in SQLModel.metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return statements


def main() -> None:
    (name,) = sys.argv[1:]
    sys.stdout.write(f"-- The schema SQLModel.metadata.create_all makes on {name}, made by\n")
    sys.stdout.write(f"-- `python -m tests.recording.migrations.freeze_schema {name}` (see that module).\n\n")
    for statement in schema_ddl(DIALECTS[name]):
        sys.stdout.write("\n".join(line.rstrip() for line in statement.splitlines()) + ";\n\n")


if __name__ == "__main__":
    main()
