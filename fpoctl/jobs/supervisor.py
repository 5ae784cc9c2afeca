"""`python -m fpoctl.jobs.supervisor --lock-fd N RUN_ID -- CMD...`: the leader of a detached job.

It runs the worker command (holding the run lock for its whole life), forwards SIGTERM to it,
copies its output into the log with a timestamp on every line (the worker's own progress lines
carry one already), and when it exits settles the run: a worker that died without recording its
end (SIGKILL, OOM, a segfault in a simulator, a dead rank) leaves the run `failed` with that
reason, not `running`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import BinaryIO

from fpoctl.train.progress import STAMPED, stamp

DRAIN_S = 2.0
"""How long output is still copied after the worker exits (a child of it that lives on, e.g. a
stuck env worker holding the pipe, must not keep the run from being settled)."""


def copy_stamped(source: BinaryIO, sink: BinaryIO) -> None:
    """Copy `source` to `sink` until it closes, starting each line that has none with a timestamp."""
    at_line_start = True
    while chunk := os.read(source.fileno(), 1 << 16):
        out = bytearray()
        for piece in chunk.splitlines(keepends=True):
            if at_line_start and not STAMPED.match(piece):
                out += stamp().encode() + b" "
            out += piece
            at_line_start = piece.endswith((b"\n", b"\r"))
        sink.write(bytes(out))
        sink.flush()


def main(argv: list[str] | None = None) -> int:
    """Run CMD, wait for it, settle the run."""
    parser = argparse.ArgumentParser(prog="python -m fpoctl.jobs.supervisor")
    parser.add_argument("run_id", type=int)
    parser.add_argument("--lock-fd", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no worker command after --")
    forwarded: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signum)
        if child is not None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # no terminal: Ctrl-C is never meant for a job
    child = subprocess.Popen(command, pass_fds=(args.lock_fd,), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    if forwarded:  # a stop that arrived while the child was being started
        child.send_signal(signal.SIGTERM)
    assert child.stdout is not None
    copier = threading.Thread(target=copy_stamped, args=(child.stdout, sys.stdout.buffer), daemon=True)
    copier.start()
    print(f"{stamp()} [fpoctl] job of run {args.run_id} starting (worker pid {child.pid})", flush=True)
    from fpoctl.errors import FpoctlError
    from fpoctl.jobs.launch import TORCHRUN, settle  # the store's imports, while the child starts
    from fpoctl.settings import Settings

    returncode = child.wait()
    copier.join(timeout=DRAIN_S)
    try:
        status = settle(Settings.resolve(), args.run_id, returncode, distributed=TORCHRUN in command,
                        stop_requested=bool(forwarded))
    except FpoctlError as exc:  # a store that cannot be written (a full disk): say so in the log
        status = f"not recorded ({exc})"
    print(f"{stamp()} [fpoctl] job of run {args.run_id} ended: {status} (exit code {returncode})",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
