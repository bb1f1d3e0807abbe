"""The baseline of the performance guide: a bare FastAPI + aiohttp streaming proxy.

It does nothing a gateway must do (no checks, no accounting); the benchmark runs it beside
Spillgate so the ratio between the two is measured on the same machine, in the same run.
"""

import sys

import aiohttp
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

UPSTREAM = sys.argv[1]
app = FastAPI()
session: aiohttp.ClientSession | None = None


@app.post("/v1/chat/completions")
async def chat(request: Request):
    global session
    session = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = await request.body()
    resp = await session.post(UPSTREAM, data=body, headers={"content-type": "application/json"})
    if b'"stream":true' in body.replace(b" ", b""):

        async def relay():
            async for chunk in resp.content.iter_any():
                yield chunk
            resp.release()

        return StreamingResponse(relay(), media_type="text/event-stream")
    data = await resp.read()
    return Response(data, media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
