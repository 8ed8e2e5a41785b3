"""A small MCP server built with the official Python SDK, used as an upstream in tests.

    python upstream.py stdio [--pid-file FILE]
    python upstream.py http [--port N] [--log FILE] [--pid-file FILE]

Tools:
  echo(text)              returns the text
  add(a, b)               returns a + b
  sleep(seconds)          waits, then returns "slept" (lets a test kill the server mid-call)
  delete_everything()     the tool the tests' policies always deny; it must never run

Over HTTP it serves Streamable HTTP at http://127.0.0.1:PORT/mcp (PORT 0 picks a free
port), prints `listening on http://127.0.0.1:PORT/mcp` on stdout once it accepts
connections, and appends every HTTP request it receives (method, path, the headers that
matter, the body) as one JSON line to --log: the proof of what reached it.
"""

import argparse
import asyncio
import json
import os
import socket
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("lexecon-test-upstream")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
async def sleep(seconds: float) -> str:
    """Waits for the given number of seconds."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool()
def delete_everything() -> str:
    """Would delete everything; the tests' policies always deny it."""
    return "deleted everything"


def recording(app, log_path):
    """An ASGI wrapper that appends each HTTP request to log_path before the app sees it."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            else:
                more = False
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = {
            "method": scope["method"],
            "path": scope["path"],
            "authorization": headers.get("authorization"),
            "x-lexecon-actor": headers.get("x-lexecon-actor"),
            "x-upstream-secret": headers.get("x-upstream-secret"),
            "body": body.decode("utf-8", "replace"),
        }
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return wrapped


async def serve_http(port: int, log_path: str | None) -> None:
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    if log_path:
        app = recording(app, log_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)

    async def announce():
        while not uv.started:
            await asyncio.sleep(0.02)
        print(f"listening on http://127.0.0.1:{bound}/mcp", flush=True)

    asyncio.get_running_loop().create_task(announce())
    await uv.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", help="HTTP only: append every request received here")
    parser.add_argument("--pid-file", help="write this process's id here")
    args = parser.parse_args()
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(args.pid_file + ".tmp", args.pid_file)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        asyncio.run(serve_http(args.port, args.log))


if __name__ == "__main__":
    sys.exit(main())
