"""The database schema as versioned Alembic migrations, with the SQL of each in plain files.

Only migrations live here; the code that runs them is `mes.migrate`.
"""

from pathlib import Path

from alembic import op

SQL_DIR = Path(__file__).resolve().parent


def run_sql_file(name: str) -> None:
    """Run one of the .sql files next to this module, as it is (several statements allowed).

    It goes straight to psycopg without parameters (simple query protocol), inside the
    migration's transaction, so `%` in the SQL needs no escaping.
    """
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    driver_connection.execute((SQL_DIR / name).read_text())
