"""`mes db`: the local cluster, migrations, what the database holds, retention."""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer

from ingest.retention import drop_old_chunks, parse_age, schedule_retention
from mes import migrate
from mes.cli.common import fail, hidden, user_errors
from mes.db import database_url, engine
from mes.localdb import LocalCluster
from mes.settings import get_settings
from mes.status import contents
from pipelines.instance import ensure_dagster_database

app = typer.Typer(no_args_is_help=True, add_completion=False)


def password_hint() -> str:
    """Where the local cluster keeps the owner's password, for a masked URL's reader."""
    settings = get_settings()
    if settings.database_url is not None:
        return ""
    return (f"   (the password is in "
            f"{LocalCluster.from_settings(settings).password_file()})")


def bring_up() -> str:
    """Start the local cluster (unless MES_DATABASE_URL names a server) and migrate."""
    settings = get_settings()
    if settings.database_url is None:
        cluster = LocalCluster.from_settings(settings)
        typer.echo(f"starting the local PostgreSQL + TimescaleDB cluster in {cluster.home}")
        cluster.up()
    url = database_url(settings)
    info = migrate.upgrade(url)
    typer.echo(f"TimescaleDB {info.version}, {info.edition} edition"
               + ("" if info.community else
                  " (no compression or retention policies; `mes db retention` drops chunks)"))
    return url


@app.command("up")
@user_errors
def db_up() -> None:
    """Provision and start the local database (or use MES_DATABASE_URL), then migrate it."""
    url = bring_up()
    typer.echo(f"database ready: {hidden(url)}")
    try:
        dagster = ensure_dagster_database(url)
    except psycopg.Error as error:
        typer.echo(f"no database for Dagster's runs and events ({error}); create one and "
                   "point dagster_home/dagster.yaml at it", err=True)
    else:
        typer.echo(f"Dagster storage: {hidden(dagster)} (`mes pipelines env`)")


@app.command("down")
@user_errors
def db_down() -> None:
    """Stop the local database cluster."""
    settings = get_settings()
    if settings.database_url:
        typer.echo("MES_DATABASE_URL names an external server: nothing to stop here")
        return
    stopped = LocalCluster.from_settings(settings).down()
    typer.echo("local database stopped" if stopped else "local database was not running")


@app.command("migrate")
@user_errors
def db_migrate(revision: Annotated[str, typer.Option(help="target revision")] = "head") -> None:
    """Apply the migrations in sql/ up to REVISION (default: the newest)."""
    info = migrate.upgrade(database_url(), revision)
    typer.echo(f"migrated to {revision} (TimescaleDB {info.version}, {info.edition} edition)")


@app.command("downgrade")
@user_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="target revision, or 'base'")],
) -> None:
    """Undo migrations down to REVISION ('base' removes the whole schema)."""
    migrate.downgrade(database_url(), revision)
    typer.echo(f"downgraded to {revision}")


@app.command("status")
@user_errors
def db_status() -> None:
    """Where the database is, what runs there, and what it holds."""
    settings = get_settings()
    if settings.database_url is None:
        cluster = LocalCluster.from_settings(settings)
        running = cluster.is_running()
        typer.echo(f"local cluster: {cluster.home} port {cluster.port}: "
                   f"{'running' if running else 'stopped'}")
        if not running:
            raise typer.Exit(code=1)
    url = database_url(settings)
    typer.echo(f"url: {hidden(url)}")
    with engine(url).connect() as conn:
        info = migrate.timescale_info(conn)
        typer.echo(f"TimescaleDB {info.version}, {info.edition} edition")
        revision = migrate.current_revision(conn)
        typer.echo(f"schema revision: {revision or 'none (run mes db up)'}")
        if revision is None:
            return
        held = contents(conn)
    for level, count in held.equipment:
        typer.echo(f"  {level}: {count}")
    typer.echo(f"  signals: {held.signals}")
    for hypertable in held.hypertables:
        typer.echo(f"  hypertable {hypertable.name}: {hypertable.chunks} chunks, "
                   f"{hypertable.size}")


@app.command("retention")
@user_errors
def db_retention(
    older_than: Annotated[str, typer.Option("--older-than", help="age such as 90d, 36h, 2w")],
    dry_run: Annotated[bool, typer.Option(help="list the chunks, drop nothing")] = False,
    policy: Annotated[bool, typer.Option(
        help="schedule it as a TimescaleDB retention policy (community edition only)")] = False,
) -> None:
    """Drop raw time-series chunks entirely older than the given age."""
    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise fail(f"--older-than: {error}") from None
    if policy:
        with engine(database_url()).begin() as conn:
            edition = migrate.timescale_info(conn).edition
            scheduled = schedule_retention(conn, age, edition=edition)
        typer.echo(f"retention policy set to {older_than} on {', '.join(scheduled)}")
        return
    with engine(database_url()).begin() as conn:
        results = drop_old_chunks(conn, age, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    for result in results:
        typer.echo(f"{result.hypertable}: {verb} {len(result.chunks)} chunks")
        for chunk in result.chunks:
            typer.echo(f"  {chunk}")
