#!/usr/bin/env python3
"""pty_run.py OUT -- COMMAND...: run COMMAND on a new pseudo-terminal (100 columns), as a
user's shell would, and keep what it writes there in OUT, byte for byte. OUT.times gets
one line per chunk read: seconds since the start, bytes, carriage returns in it that do not end a line; the last
line is "exit SECONDS STATUS". Exits with the command's status. Standard library only."""
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    out, cmd = sys.argv[1], sys.argv[3:]
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.execvp(cmd[0], cmd)
    t0 = time.monotonic()
    with open(out, "wb") as raw, open(out + ".times", "w") as times:
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 600)
                data = os.read(fd, 65536) if ready else b""
            except OSError:  # EIO: every writer has closed the terminal
                data = b""
            if not data:
                break
            raw.write(data)
            # the terminal turns each newline into \r\n: count the other carriage returns
            bare = data.count(b"\r") - data.count(b"\r\n")
            times.write(f"{time.monotonic() - t0:.3f} {len(data)} {bare}\n")
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        times.write(f"exit {time.monotonic() - t0:.3f} {code}\n")
    sys.exit(code if code >= 0 else 1)


if __name__ == "__main__":
    main()
