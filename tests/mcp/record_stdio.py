"""Runs an MCP server over stdio and records every byte it receives.

    python record_stdio.py --log FILE [--pid-file FILE] -- COMMAND [ARGS...]

Starts COMMAND with a pipe for its standard input; everything this process reads on its
own standard input is appended to FILE (flushed line by line) and then written to
COMMAND. COMMAND's standard output and error are inherited, so its answers reach the
reader directly. When COMMAND exits, this process exits with its code at once (it does
not wait for its own input to close), so whoever started it sees the server's death.

The tests use the log as proof of what the upstream server received: a tool call the
gateway denied must not appear in it. It is the real server behind it, unchanged.
"""

import argparse
import os
import subprocess
import sys
import threading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="file to append every received byte to")
    parser.add_argument("--pid-file", help="file to write the server's process id to")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the server's command after --")

    child = subprocess.Popen(command, stdin=subprocess.PIPE)
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write(str(child.pid))
        os.replace(args.pid_file + ".tmp", args.pid_file)

    def pump() -> None:
        assert child.stdin is not None
        with open(args.log, "ab") as log:
            stdin = sys.stdin.buffer
            while True:
                line = stdin.readline()
                if not line:
                    break
                log.write(line)
                log.flush()
                try:
                    child.stdin.write(line)
                    child.stdin.flush()
                except (BrokenPipeError, ValueError):
                    break
        try:
            child.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    threading.Thread(target=pump, daemon=True).start()
    code = child.wait()
    sys.stdout.flush()
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
