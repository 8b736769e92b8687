"""`python -m e2e.harness --kubeconfig PATH`: run the harness in the foreground until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .config import RUN_DIR, HarnessConfig
from .kubelet import Harness


def main(argv: list[str] | None = None) -> int:
    """Parse flags, write the pid file, run until SIGTERM/SIGINT, then stop every process."""
    p = argparse.ArgumentParser(prog="python -m e2e.harness", description=__doc__)
    p.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    p.add_argument("--run-dir", type=Path, default=RUN_DIR)
    p.add_argument(
        "--namespace-selector",
        default=None,
        help="namespaces whose pods run as processes (default: jobfleet.dev/e2e=true)",
    )
    args = p.parse_args(argv)
    if not args.kubeconfig:
        p.error("--kubeconfig (or KUBECONFIG) is required")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(message)s",
        stream=sys.stderr,
    )
    cfg = HarnessConfig(kubeconfig=args.kubeconfig, run_dir=args.run_dir)
    if args.namespace_selector:
        cfg.namespace_selector = args.namespace_selector
    harness = Harness(cfg)
    pidfile = cfg.run_dir / "harness.pid"
    pidfile.write_text(str(os.getpid()))
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watcher = threading.Thread(target=harness.run, name="watch", daemon=True)
    watcher.start()
    done.wait()
    logging.getLogger("e2e.harness").info("stopping: terminating all pod processes")
    harness.stop()
    pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
