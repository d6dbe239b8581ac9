"""The demo's mail server: an SMTP server on loopback that keeps what it is sent, as files.

``stockpulse up`` starts it when ``SMTP_URL`` is not set, so password resets and alert emails
of the demo go somewhere a person can read them: the dashboard's Mailbox page lists the
files (``STOCKPULSE_MAIL_CATCHER_DIR``). Nothing leaves the machine. The newest
:data:`KEEP` messages are kept.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

KEEP = 500


class CatchingHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seq = itertools.count()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        name = f"{time.time_ns():020d}-{next(self._seq):06d}.eml"
        temporary = self.directory / f".{name}.part"
        temporary.write_bytes(content)
        # A reader never sees half a message: the file appears complete or not at all.
        os.replace(temporary, self.directory / name)
        self._prune()
        return "250 OK: kept by the Stockpulse mail catcher"

    def _prune(self) -> None:
        with self._lock:
            kept = sorted(self.directory.glob("*.eml"))
            for old in kept[:-KEEP]:
                old.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ops.mail_catcher", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(CatchingHandler(directory), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"mail catcher listening on 127.0.0.1:{args.port}, keeping mail in {directory}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
