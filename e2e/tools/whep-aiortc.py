#!/usr/bin/env python3
"""A WHEP player (draft-ietf-wish-whep) on aiortc, a WebRTC stack we did not write: offers
recvonly audio and video with POST <endpoint>, decodes what arrives, and reports once it
has decoded enough; then holds the session until a line "delete" (or the end of stdin),
then DELETEs it.

    whep-aiortc.py URL [--frames N]

Prints one JSON object per line on stdout: {"event": "answered", "status": 201,
"location": ..., "payloadTypes": {"audio/opus": .., "video/VP8": ..}} or {"event":
"refused", ...} (and exits 0); {"event": "decoded", "videoFrames": .., "width": ..,
"height": .., "audioFrames": ..}; {"event": "deleted", "status": ...}.
"""

import argparse
import asyncio
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

# aioice skips loopback addresses; the tests run in a namespace with only lo.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def say(**event):
    print(json.dumps(event), flush=True)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def payload_types(sdp):
    """The offer's payload type of Opus and VP8 (aiortc numbers its own)."""
    pts = {}
    for pt, name in re.findall(r"a=rtpmap:(\d+) (opus|VP8)/", sdp):
        pts.setdefault(("audio/" if name == "opus" else "video/") + name, int(pt))
    return pts


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()

    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    counts = {"video": 0, "audio": 0, "width": 0, "height": 0}
    enough = asyncio.Event()

    async def consume(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            counts[track.kind] += 1
            if track.kind == "video":
                counts["width"], counts["height"] = frame.width, frame.height
            if counts["video"] >= args.frames and counts["audio"] >= args.frames:
                enough.set()

    @pc.on("track")
    def on_track(track):
        asyncio.ensure_future(consume(track))

    # aiortc gathers during setLocalDescription: the offer is complete (no trickle).
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    loop = asyncio.get_running_loop()
    status, h, body = await loop.run_in_executor(
        None, lambda: http("POST", args.url, offer.encode(), {"Content-Type": "application/sdp"})
    )
    if status != 201:
        say(event="refused", status=status, body=body)
        await pc.close()
        return
    location = urllib.parse.urljoin(args.url, h["Location"])
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    say(event="answered", status=status, location=location, payloadTypes=payload_types(offer))

    await enough.wait()
    say(
        event="decoded",
        videoFrames=counts["video"],
        width=counts["width"],
        height=counts["height"],
        audioFrames=counts["audio"],
    )
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "delete":
            break
    status, _, _ = await loop.run_in_executor(None, lambda: http("DELETE", location))
    say(event="deleted", status=status)
    await pc.close()


if __name__ == "__main__":
    asyncio.run(main())
