"""The project's own PostgreSQL + TimescaleDB cluster, in a folder the project owns.

Installs the server when it is missing (Debian 12 and 13), creates the cluster with
`initdb`, starts and stops it with `pg_ctl`, and creates the owner role and database.
It does not migrate: that is `mes.migrate`'s job, for local and external databases alike.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

from mes.settings import Settings
from transactional.errors import MesError

DEFAULT_PORT = 55432
SUPERUSER = "postgres"
OWNER_ROLE = "mes_owner"
POSTGRES_VERSIONS = (17, 16, 15)


class LocalDatabaseError(MesError):
    """The local cluster could not be installed, created or started."""


class UnsupportedSystemError(LocalDatabaseError):
    """This system cannot get PostgreSQL with TimescaleDB automatically."""


def find_postgres_bin() -> Path | None:
    """The bin folder of the newest PostgreSQL that has the TimescaleDB extension installed."""
    for version in POSTGRES_VERSIONS:
        bin_dir = Path(f"/usr/lib/postgresql/{version}/bin")
        control = Path(f"/usr/share/postgresql/{version}/extension/timescaledb.control")
        if (bin_dir / "postgres").exists() and control.exists():
            return bin_dir
    return None


def install_postgres() -> Path:
    """Install PostgreSQL and TimescaleDB with the bundled script; returns the bin folder."""
    script = resources.files("mes") / "scripts" / "install-timescaledb.sh"
    with resources.as_file(script) as path:
        result = subprocess.run(["bash", str(path)], stderr=subprocess.PIPE, text=True)
    if result.returncode == 3:
        raise UnsupportedSystemError(result.stderr.strip())
    if result.returncode != 0:
        raise LocalDatabaseError(f"installing PostgreSQL with TimescaleDB failed:\n{result.stderr}")
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise LocalDatabaseError(
            "the installer finished but no PostgreSQL with TimescaleDB is found")
    return bin_dir


@dataclass(frozen=True)
class LocalCluster:
    home: Path
    requested_port: int | None
    database: str

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalCluster:
        return cls(home=settings.home.resolve(), requested_port=settings.local_port,
                   database=settings.local_database)

    @cached_property
    def port(self) -> int:
        """The requested port, else the one this cluster was created with, else the first
        free one from 55432: a second clone on the same machine gets its own."""
        if self.requested_port is not None:
            return self.requested_port
        conf = self.data_dir / "mes.conf"
        if conf.is_file():
            match = re.search(r"^port = (\d+)$", conf.read_text(), re.MULTILINE)
            if match:
                return int(match.group(1))
        port = DEFAULT_PORT
        while _port_in_use(port):
            port += 1
        return port

    @cached_property
    def server_dir(self) -> Path:
        """Where the server's own files live: in `home`, unless the postgres user cannot
        enter it (a clone under /root, say); then in a folder of the postgres user's,
        named after `home` so each clone keeps its own cluster."""
        if os.geteuid() != 0 or self._postgres_can_enter(self.home):
            return self.home
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]
        return Path("/var/lib/postgresql/mes-clusters") / digest

    def _postgres_can_enter(self, path: Path) -> bool:
        while not path.exists():  # a folder yet to be made is as reachable as its parent
            path = path.parent
        return self._run(["test", "-x", str(path)], check=False).returncode == 0

    @property
    def data_dir(self) -> Path:
        return self.server_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.server_dir / "run"

    @property
    def log_file(self) -> Path:
        return self.server_dir / "postgres.log"

    def password_file(self, role: str = OWNER_ROLE) -> Path:
        """Where a role's password is kept (readable by this user only)."""
        return self._password_file(role)

    def _password_file(self, role: str) -> Path:
        # Next to the server's files: a cluster and its passwords always go together.
        return self.server_dir / f"{role}.password"

    def _password(self, role: str) -> str:
        path = self._password_file(role)
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise LocalDatabaseError(
                f"no local cluster in {self.home}: run `mes db up` or set MES_DATABASE_URL"
            ) from None

    def url(self, database: str | None = None, role: str = OWNER_ROLE) -> str:
        """A psycopg URL for `role` on this cluster (the owner role unless told otherwise)."""
        return (f"postgresql://{role}:{self._password(role)}@127.0.0.1:{self.port}/"
                f"{database or self.database}")

    def admin_url(self, database: str = "postgres") -> str:
        return self.url(database, role=SUPERUSER)

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    # -- running server commands as the right user --------------------------------------

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        # initdb and postgres refuse to run as root: run them as the postgres user instead.
        command = ["runuser", "-u", SUPERUSER, "--", *args] if os.geteuid() == 0 else args
        result = subprocess.run(command, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise LocalDatabaseError(
                f"{Path(args[0]).name} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
                f"{self._log_tail()}"
            )
        return result

    def _log_tail(self) -> str:
        if not self.log_file.exists():
            return ""
        lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        return f"\nlast lines of {self.log_file}:\n" + "\n".join(lines)

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, SUPERUSER, SUPERUSER)

    # -- lifecycle -----------------------------------------------------------------------

    def is_running(self, bin_dir: Path | None = None) -> bool:
        bin_dir = bin_dir or find_postgres_bin()
        if bin_dir is None or not self.initialized:
            return False
        return self._run([str(bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)],
                         check=False).returncode == 0

    def up(self) -> None:
        """Install, initialise and start the cluster and create the database; idempotent."""
        bin_dir = find_postgres_bin() or install_postgres()
        self.home.mkdir(parents=True, exist_ok=True)
        running = self.is_running(bin_dir)
        if not running and _port_in_use(self.port):
            raise LocalDatabaseError(
                f"port {self.port} is already in use (another cluster of this project in "
                "another folder?): stop it, or choose another port with MES_LOCAL_PORT"
            )
        if not self.initialized:
            self._init(bin_dir)
        self._write_config()
        # The server log holds statements and row data: its owner's alone (clusters made
        # before this was so are corrected here).
        if self.log_file.exists():
            self.log_file.chmod(0o600)
        if not running:
            self._run([str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D",
                       str(self.data_dir), "-l", str(self.log_file)])
        self._create_owner_and_database()

    def up_as_replica_of(self, primary: LocalCluster) -> None:
        """Create this cluster as a streaming replica of `primary` (a hot standby: read-only
        queries, e.g. dashboards) with pg_basebackup, and start it."""
        bin_dir = find_postgres_bin() or install_postgres()
        if self.initialized:
            raise LocalDatabaseError(f"{self.data_dir} already holds a cluster")
        self.server_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.server_dir)
        # Same roles, same passwords: the replica is a copy of the primary.
        for role in (SUPERUSER, OWNER_ROLE):
            shutil.copy2(primary.password_file(role), self.password_file(role))
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.log_file.touch(mode=0o600)
        for path in (self.data_dir, self.socket_dir, self.log_file):
            self._own(path)
        source = (f"host=127.0.0.1 port={primary.port} user={SUPERUSER} "
                  f"password={self._password(SUPERUSER)}")
        # -R writes the standby's primary_conninfo; -X stream copies the WAL made meanwhile.
        self._run([str(bin_dir / "pg_basebackup"), "-D", str(self.data_dir), "-d", source,
                   "-R", "-X", "stream", "-c", "fast"])
        self._write_config()
        self._run([str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D",
                   str(self.data_dir), "-l", str(self.log_file)])

    def down(self) -> bool:
        """Stop the cluster; returns whether it was running."""
        bin_dir = find_postgres_bin()
        if bin_dir is None or not self.is_running(bin_dir):
            return False
        self._run([str(bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data_dir)])
        return True

    def remove(self) -> None:
        """Stop the cluster and delete its server files where they live outside `home`
        (a throwaway cluster's; `home` itself is its caller's to delete)."""
        try:
            self.down()
        finally:
            if self.server_dir != self.home:
                shutil.rmtree(self.server_dir, ignore_errors=True)

    def _init(self, bin_dir: Path) -> None:
        if self.server_dir != self.home:
            self.server_dir.mkdir(parents=True, exist_ok=True)
            self._own(self.server_dir)
        for role in (SUPERUSER, OWNER_ROLE):
            path = self._password_file(role)
            if not path.exists():
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as secret:
                    secret.write(secrets.token_urlsafe(18) + "\n")
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.log_file.touch(mode=0o600)
        for path in (self.data_dir, self.socket_dir, self.log_file):
            self._own(path)
        # initdb reads the superuser password from a file the postgres user can read.
        pwfile = self.socket_dir / "initdb.pw"
        pwfile.write_text(self._password(SUPERUSER) + "\n")
        self._own(pwfile)
        try:
            self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                       "--pwfile", str(pwfile), "--auth-local=peer",
                       "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
        finally:
            pwfile.unlink(missing_ok=True)

    def _write_config(self) -> None:
        conf = self.data_dir / "mes.conf"
        content = (
            "# Written by `mes db up`; edit settings through MES_ variables instead.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "shared_preload_libraries = 'timescaledb'\n"
            "timescaledb.telemetry_level = off\n"
            "max_connections = 200\n"
        )
        if conf.is_file() and conf.read_text() == content:
            return
        # Written whole and renamed into place: another process starting at the same moment
        # (parallel test workers) reads the old file or the new one, never an empty one, and
        # so never takes the cluster's port for a free one.
        written = conf.with_name(f"mes.conf.{os.getpid()}")
        written.write_text(content)
        self._own(written)
        os.replace(written, conf)
        main_conf = self.data_dir / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'mes.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'mes.conf'\n")

    def _create_owner_and_database(self) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (OWNER_ROLE,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL("{} ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(OWNER_ROLE),
                sql.Literal(self._password(OWNER_ROLE))))
            create_database(conn, self.database)


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def create_database(admin: psycopg.Connection[tuple[object, ...]], name: str,
                    template: str | None = None) -> None:
    """Create `name`, owned by the owner role, with TimescaleDB in it; no-op if it exists."""
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(OWNER_ROLE))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(statement)
    if template is None:
        # Every time, so an earlier run stopped halfway is repaired. Creating the extension
        # needs a superuser; everything after runs as the owner.
        info = admin.info
        with psycopg.connect(host=info.host, port=info.port, user=info.user,
                             password=info.password, dbname=name, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
