"""An MCP client driven by a script of steps, built on the official Python SDK.

    python client.py stdio [--cwd DIR] -- COMMAND [ARGS...]
    python client.py http URL [--header 'Name: value']...
    ... [--script FILE]

Connects (the SDK's stdio client, which starts COMMAND, or its Streamable HTTP client),
runs the `initialize` handshake, and prints one JSON line:
  {"ok": true, "connected": {"server": NAME, "protocol_version": V}}
or {"ok": false, "error": "..."} (and exits 1). Then it reads steps, one JSON object a
line, from --script FILE or else from standard input as they come (a test can act
between steps), and prints one JSON result line per step:

  {"op": "list_tools"}                        -> {"ok": true, "tools": [NAME, ...]}
  {"op": "call", "name": N, "arguments": {..}, "meta": {..}}
                                              -> {"ok": true, "result": CallToolResult as JSON}
  {"op": "ping"}                              -> {"ok": true}

Each step may carry "timeout" (seconds, default 30). A JSON-RPC error or a closed
connection is {"ok": false, "error": TEXT, "code": N or null}; a step that does not
finish in time is {"ok": false, "timeout": true}. End of input closes the session.
"""

import argparse
import json
import sys
import traceback

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error_of(exc: BaseException) -> dict:
    if isinstance(exc, MCPError):
        return {"ok": False, "error": str(exc), "code": getattr(exc, "code", None)}
    if isinstance(exc, BaseExceptionGroup):
        inner = [error_of(e)["error"] for e in exc.exceptions]
        return {"ok": False, "error": "; ".join(inner), "code": None}
    return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "code": None}


async def run_step(session: ClientSession, step: dict) -> dict:
    op = step.get("op")
    if op == "list_tools":
        listed = await session.list_tools()
        return {"ok": True, "tools": [t.name for t in listed.tools]}
    if op == "call":
        result = await session.call_tool(
            step["name"], step.get("arguments"), meta=step.get("meta")
        )
        return {"ok": True, "result": result.model_dump(by_alias=True, mode="json", exclude_none=True)}
    if op == "ping":
        await session.send_ping()
        return {"ok": True}
    return {"ok": False, "error": f"unknown op {op!r}: use list_tools, call or ping", "code": None}


async def next_line(script) -> str:
    if script is not None:
        return script.readline()
    return await anyio.to_thread.run_sync(sys.stdin.readline)


async def drive(read, write, script) -> None:
    async with ClientSession(read, write) as session:
        try:
            with anyio.fail_after(30):
                init = await session.initialize()
        except BaseException as exc:  # noqa: BLE001 - reported to the test as data
            emit(error_of(exc))
            raise SystemExit(1)
        emit(
            {
                "ok": True,
                "connected": {
                    "server": init.server_info.name,
                    "protocol_version": init.protocol_version,
                },
            }
        )
        while True:
            line = await next_line(script)
            if not line:
                return
            line = line.strip()
            if not line:
                continue
            step = json.loads(line)
            try:
                with anyio.fail_after(float(step.get("timeout", 30))):
                    emit(await run_step(session, step))
            except TimeoutError:
                emit({"ok": False, "timeout": True})
            except Exception as exc:  # noqa: BLE001 - reported to the test as data
                emit(error_of(exc))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="transport", required=True)
    stdio = sub.add_parser("stdio")
    stdio.add_argument("--cwd")
    stdio.add_argument("--script")
    stdio.add_argument("command", nargs=argparse.REMAINDER)
    http = sub.add_parser("http")
    http.add_argument("url")
    http.add_argument("--header", action="append", default=[])
    http.add_argument("--script")
    args = parser.parse_args()
    script = open(args.script) if args.script else None

    try:
        if args.transport == "stdio":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                parser.error("give the server's command after --")
            params = StdioServerParameters(command=command[0], args=command[1:], cwd=args.cwd)
            async with stdio_client(params) as (read, write):
                await drive(read, write, script)
        else:
            headers = {}
            for h in args.header:
                name, _, value = h.partition(":")
                headers[name.strip()] = value.strip()
            async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http_client:
                async with streamable_http_client(args.url, http_client=http_client) as (read, write):
                    await drive(read, write, script)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the connection itself failed
        traceback.print_exc(file=sys.stderr)
        emit(error_of(exc))
        raise SystemExit(1)


if __name__ == "__main__":
    anyio.run(main)
