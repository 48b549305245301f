#!/usr/bin/env python3
"""A WHIP client (RFC 9725) on aiortc, a WebRTC stack we did not write: publishes a
generated 640x480 video (moving bars) and a 440 Hz tone with POST <endpoint>, then holds
the session until a line "delete" (or the end of stdin), then DELETEs it.

    whip-aiortc.py URL [--token T] [--codec vp8|h264]

Prints one JSON object per line on stdout: {"event": "answered", "status": 201,
"location": ...}, or {"event": "refused", "status": ..., "body": ...} (and exits 0),
then {"event": "deleted", "status": ...}.
"""

import argparse
import asyncio
import fractions
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import aioice.ice
import numpy
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

# aioice skips loopback addresses; the tests run in a namespace with only lo.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class Bars(VideoStreamTrack):
    """640x480 at 30 fps, bars that move so every frame differs."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        shift = (pts // 3000) % 640
        x = (numpy.arange(640) + shift) % 640
        row = numpy.stack([(x * 255 // 640), (255 - x * 255 // 640), (x * 7) % 256], axis=1)
        img = numpy.broadcast_to(row, (480, 640, 3)).astype(numpy.uint8)
        frame = VideoFrame.from_ndarray(numpy.ascontiguousarray(img), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames of 48 kHz mono."""

    def __init__(self):
        super().__init__()
        self._start = None
        self._samples = 0

    async def recv(self):
        rate, n = 48000, 960
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._samples / rate - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (numpy.arange(n) + self._samples) / rate
        data = (numpy.sin(2 * math.pi * 440 * t) * 8000).astype(numpy.int16)
        frame = AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, rate)
        self._samples += n
        return frame


def say(**event):
    print(json.dumps(event), flush=True)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--token")
    ap.add_argument("--codec", default="vp8", choices=["vp8", "h264"])
    args = ap.parse_args()

    pc = RTCPeerConnection()
    video = pc.addTransceiver(Bars(), direction="sendonly")
    pc.addTransceiver(Tone(), direction="sendonly")
    mime = "video/VP8" if args.codec == "vp8" else "video/H264"
    video.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in (mime, "video/rtx")]
    )
    # aiortc gathers during setLocalDescription: the offer is complete (no trickle).
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    loop = asyncio.get_running_loop()
    status, h, body = await loop.run_in_executor(
        None, lambda: http("POST", args.url, pc.localDescription.sdp.encode(), headers)
    )
    if status != 201:
        say(event="refused", status=status, body=body, wwwAuthenticate=h.get("WWW-Authenticate"))
        await pc.close()
        return
    location = urllib.parse.urljoin(args.url, h["Location"])
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    say(event="answered", status=status, location=location, etag=h.get("ETag"))

    # Hold the session until told to end it.
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "delete":
            break
    status, _, _ = await loop.run_in_executor(None, lambda: http("DELETE", location))
    say(event="deleted", status=status)
    await pc.close()


if __name__ == "__main__":
    asyncio.run(main())
