"""Drives Etch's MCP tools with the official Python MCP SDK (not ours).

Usage: client.py stdio ETCH STORE | client.py stdio-connect ETCH HOST:PORT | client.py http URL [BEARER]
Prints one line per step; exits non-zero (with the reason) on the first wrong answer.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

try:  # mcp >= 2
    from mcp.client.streamable_http import streamable_http_client as http_client
except ImportError:  # mcp 1.x
    from mcp.client.streamable_http import streamablehttp_client as http_client

EXPECTED_TOOLS = {
    "dlfs_list_drives", "dlfs_create_drive", "dlfs_delete_drive", "dlfs_list", "dlfs_read",
    "dlfs_write", "dlfs_mkdir", "dlfs_delete", "etch_query", "etch_fetch", "etch_store",
}


def check(cond, what):
    if not cond:
        print("FAILED:", what, flush=True)
        sys.exit(1)


async def call(session, name, args):
    r = await session.call_tool(name, args)
    text = r.content[0].text if r.content else ""
    structured = r.structured_content
    check(json.loads(text) == structured, f"{name}: text content is the structured result's JSON")
    return r.is_error, structured


async def exercise(read, write, drive):
    async with ClientSession(read, write) as session:
        init = await session.initialize()
        print("initialized:", init.server_info.name, init.protocol_version, flush=True)
        tools = {t.name: t for t in (await session.list_tools()).tools}
        check(set(tools) == EXPECTED_TOOLS, f"tool names {sorted(tools)}")
        check(tools["dlfs_create_drive"].input_schema["required"] == ["name"], "create_drive schema")
        check(tools["dlfs_write"].input_schema["required"] == ["drive", "path", "content"],
              "write schema")
        print("tools:", len(tools), flush=True)

        err, r = await call(session, "dlfs_create_drive", {"name": drive})
        check(not err and r == {"created": True, "name": drive}, f"create_drive {r}")
        err, r = await call(session, "dlfs_create_drive", {"name": drive})
        check(err and r == {"message": f"Drive already exists: {drive}"}, f"create twice {r}")
        err, r = await call(session, "dlfs_list_drives", {})
        check(not err and drive in r["drives"], f"list_drives {r}")
        err, r = await call(session, "dlfs_mkdir", {"drive": drive, "path": "docs"})
        check(not err and r == {"created": True}, f"mkdir {r}")
        text = "héllo from the MCP SDK\n"
        err, r = await call(session, "dlfs_write",
                            {"drive": drive, "path": "docs/notes.txt", "content": text})
        check(not err and r == {"written": len(text.encode()), "created": True}, f"write {r}")
        err, r = await call(session, "dlfs_write",
                            {"drive": drive, "path": "docs/notes.txt", "content": text})
        check(not err and r["created"] is False, f"overwrite {r}")
        err, r = await call(session, "dlfs_write",
                            {"drive": drive, "path": "nowhere/x.txt", "content": "x"})
        check(err and "message" in r, f"write without parent {r}")
        err, r = await call(session, "dlfs_list", {"drive": drive, "path": "docs"})
        check(not err and r == {"entries": [
            {"name": "notes.txt", "type": "file", "size": len(text.encode())}]}, f"list {r}")
        err, r = await call(session, "dlfs_list", {"drive": drive})
        check(not err and r == {"entries": [{"name": "docs", "type": "directory"}]},
              f"list root {r}")
        err, r = await call(session, "dlfs_read", {"drive": drive, "path": "docs/notes.txt"})
        check(not err and r == {"content": text, "encoding": "utf-8",
                                "size": len(text.encode())}, f"read {r}")
        print("drive: create, mkdir, write, list, read back", flush=True)

        err, r = await call(session, "etch_store", {"value": "{:a [1 2 3]}"})
        check(not err and len(r["id"]) == 64, f"store {r}")
        vid = r["id"]
        err, r = await call(session, "etch_fetch", {"id": vid})
        check(not err and r["printed"] == "{:a [1 2 3]}" and r["json"] == {"a": [1, 2, 3]},
              f"fetch {r}")
        err, r = await call(session, "etch_query", {"query": "(count (vec (range 5)))"})
        if err:  # range may not exist: any read-only query will do
            err, r = await call(session, "etch_query", {"query": "(+ 1 2)"})
            check(not err and r["json"] == 3, f"query {r}")
        err, r = await call(session, "etch_query", {"query": f"(ls \"{drive}/docs\")"})
        check(not err and r["json"] == ["notes.txt"], f"query ls {r}")
        err, r = await call(session, "etch_query", {"query": f"(mkdrive \"{drive}2\")"})
        check(err, f"etch_query is read-only {r}")
        print("query, fetch, store", flush=True)

        err, r = await call(session, "dlfs_delete", {"drive": drive, "path": "docs/notes.txt"})
        check(not err and r == {"deleted": True}, f"delete {r}")
        err, r = await call(session, "dlfs_read", {"drive": drive, "path": "docs/notes.txt"})
        check(err, f"read deleted {r}")
        err, r = await call(session, "dlfs_delete_drive", {"name": drive})
        check(not err and r == {"deleted": True}, f"delete_drive {r}")
        err, r = await call(session, "dlfs_list_drives", {})
        check(not err and drive not in r["drives"], f"drive gone {r}")
        print("delete, delete_drive", flush=True)


async def main():
    mode = sys.argv[1]
    if mode in ("stdio", "stdio-connect"):
        # A new store on this run's path (--create), or a running node.
        where = ["--create", "--store"] if mode == "stdio" else ["--connect"]
        # The whole environment (ETCH_HOME: the node key), not the SDK's default subset.
        params = StdioServerParameters(command=sys.argv[2], args=["mcp", *where, sys.argv[3]],
                                       env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            await exercise(read, write, "agent" if mode == "stdio" else "remote")
    else:
        url = sys.argv[2]
        headers = {"Authorization": f"Bearer {sys.argv[3]}"} if len(sys.argv) > 3 else None
        ctx = http_client(url)
        if headers:
            try:  # mcp >= 2: an httpx2 client carries the headers
                import httpx2
                ctx = http_client(url, http_client=httpx2.AsyncClient(headers=headers))
            except ImportError:  # mcp 1.x
                ctx = http_client(url, headers=headers)
        async with ctx as streams:
            await exercise(streams[0], streams[1], "web")
    print("ok", flush=True)


asyncio.run(main())
