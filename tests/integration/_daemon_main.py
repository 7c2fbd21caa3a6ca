"""Test-only entry point: `python -m tests.integration._daemon_main PORT DATA_DIR DB_URL`.

Runs `loop.run` with a processor that sleeps a little per message (so a kill -9
lands mid-batch) and records every processing as an Event (so doubles are visible).
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from mailbot.daemon import loop
from mailbot.daemon.loop import Backoff
from mailbot.store.db import make_engine, session_factory
from tests.integration._ingest_helpers import make_settings, recording_processor


def main() -> int:
    port, data_dir, db_url = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = make_settings(port, data_dir, db_url, batch_size=25, poll_seconds=1)
    factory = session_factory(make_engine(db_url))
    stop = threading.Event()
    return loop.run(
        settings,
        recording_processor(delay=0.01),
        stop,
        factory=factory,
        backoff=Backoff(initial=0.2, maximum=1.0),
    )


if __name__ == "__main__":
    sys.exit(main())
