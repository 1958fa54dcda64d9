"""serve.py run as a user runs it, in a process of its own, and an aiortc client for it."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.synthetic_weights import save_released, seeded

from media.synthetic import face_frames, speech_like, write_media, write_video
from models import Wav2Lip

ROOT = Path(__file__).resolve().parents[2]
BOX = (20, 90, 30, 100)  # top bottom left right, of face_frames' face
SPEECH_SECONDS, SILENCE_SECONDS = 2.0, 2.0


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Seeded generator weights, a face video and speech with a pause (speech, then silence)."""
    d = tmp_path_factory.mktemp("serve_media")
    save_released(seeded(Wav2Lip(), 0), d / "gen.pth")
    write_video(d / "face.mp4", face_frames(25))
    speech = np.concatenate([speech_like(SPEECH_SECONDS), np.zeros(int(SILENCE_SECONDS * 16000), np.float32)])
    write_media(d / "speech_then_silence.wav", speech[None], 16000, audio_codec="pcm_s16le")
    write_media(d / "speech.wav", speech_like(1.0)[None], 16000, audio_codec="pcm_s16le")
    return d


class Server:
    """``python serve.py ARGS`` until stop(); its output lines collected as they come."""

    def __init__(self, media, *args, tmpdir=None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if tmpdir is not None:
            env["TMPDIR"] = str(tmpdir)
        command = [sys.executable, str(ROOT / "serve.py"), "--checkpoint_path", str(media / "gen.pth"),
                   "--face", str(media / "face.mp4"), "--box", *map(str, BOX), "--port", "0", "--quiet", *map(str, args)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines, self.changed = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        found = self.wait_for(r"Serving on (http://\S+)", 120)
        self.address = found.group(1)
        self.url = self.address.split("?")[0]
        self.token = dict(re.findall(r"(\w+)=([^&]+)", self.address.split("?")[1])).get("token") \
            if "?" in self.address else None

    def _read(self):
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def mark(self):
        """Where the output is now: wait_for(..., since=mark()) looks at lines printed after it."""
        with self.changed:
            return len(self.lines)

    def wait_for(self, pattern, timeout=60, since=0):
        """The first output line matching ``pattern``; fails the test after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines[since:]:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reading()):
                    raise AssertionError(f"serve.py never printed {pattern!r}; its output:\n" + "\n".join(self.lines))
                self.changed.wait(min(left, 0.5))

    def _reading(self):
        return not self.process.stdout.closed and self.process.poll() is None

    def threads(self):
        return len(os.listdir(f"/proc/{self.process.pid}/task"))

    def stop(self, signum=signal.SIGINT):
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *error):
        self.stop()


def client_process(url, wav, seconds):
    """live_session in a process of its own (to be killed)."""
    code = ("import asyncio, sys; sys.path[:0] = sys.argv[3:6]; from server_process import live_session; "
            "asyncio.run(live_session(sys.argv[1], sys.argv[2], float(sys.argv[6])))")
    here = Path(__file__).parent
    return subprocess.Popen([sys.executable, "-c", code, url, str(wav), str(here), str(here.parent), str(ROOT),
                             str(seconds)], cwd=here)


async def live_session(url, wav, seconds, token=None, on_started=None):
    """A WebRTC client as the page is one: ``wav`` as its microphone (looped), the video and
    audio received for ``seconds``; returns what came back."""
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer
    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = MediaPlayer(str(wav), loop=True)
    pc.addTrack(player.audio)
    pc.addTransceiver("video", direction="recvonly")
    channel = pc.createDataChannel("frames")
    got = {"flags": [], "indices": [], "video": 0, "audio_samples": 0, "sizes": set()}

    @channel.on("message")
    def on_message(message):
        frame = json.loads(message)
        got["flags"].append(frame["speaking"])
        got["indices"].append(frame["index"])

    async def consume(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                got["video"] += 1
                got["sizes"].add((frame.width, frame.height))
            else:
                got["audio_samples"] += frame.samples

    consumers = []
    pc.on("track", lambda track: consumers.append(asyncio.ensure_future(consume(track))))
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"X-Token": token} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "offer", json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type},
                             headers=headers) as response:
            answer = await response.json()
            if response.status != 200:
                await pc.close()
                player.audio.stop()
                return {"status": response.status, **answer}
    got["session"] = answer["session"]
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    if on_started is not None:
        await on_started()
    await asyncio.sleep(seconds)
    await pc.close()
    player.audio.stop()
    for consumer in consumers:
        consumer.cancel()
    return {"status": 200, **got}
