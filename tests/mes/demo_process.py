"""`mes demo` as a user runs it (`./run demo`): a process of its own, in its own process
group as a terminal's foreground job, its output read line by line, stopped with Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# From Ctrl-C to the last process gone: the collectors flush, Streamlit stops on SIGTERM.
PROMPTLY = 20.0
DASHBOARDS_AT = r"dashboards at (http://127\.0\.0\.1:\d+)"
COLLECTING_LIVE = r"collecting live until Ctrl-C"


def _answer_ctrl_c() -> None:
    # A test run started in the background (`./run test &`, a CI runner) inherits SIGINT
    # ignored, and Python then keeps ignoring it: the demo would never see the Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class DemoProcess:
    """A running `mes demo` (no --seconds: until Ctrl-C) on the database `url`."""

    def __init__(self, url: str, folder: Path) -> None:
        env = {**os.environ, "MES_DATABASE_URL": url, "MES_COLLECT_DIR": str(folder),
               "MES_SESSION_FILE": str(folder / "session")}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("mes")), "demo", "--port", "0"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True, preexec_fn=_answer_ctrl_c)
        self.seen: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    @property
    def output(self) -> str:
        return "".join(self.seen) + "".join(self._lines.queue)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line from now on matching `pattern`; AssertionError with the output
        so far when none comes within `timeout` seconds or the demo ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line like {pattern!r} within {timeout:g} s (exit code "
                             f"{self.process.poll()}):\n{self.output}")

    def serving(self) -> str:
        """Wait until the demo serves its dashboards and collects live; their address."""
        site = self.wait_for(DASHBOARDS_AT, 180)[1]
        self.wait_for(COLLECTING_LIVE, 30)
        return site

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it to its foreground job; the exit code, or
        AssertionError when the demo is still running PROMPTLY seconds later."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=PROMPTLY)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {PROMPTLY:g} s after Ctrl-C:\n"
                                 f"{self.output}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def demo_process(url: str, folder: Path) -> Iterator[DemoProcess]:
    """`mes demo` running until the block ends (killed then if still running)."""
    demo = DemoProcess(url, folder)
    try:
        yield demo
    finally:
        demo.kill()
