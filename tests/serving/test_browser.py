"""The page in a real browser: headless Chromium (Debian's package, which CI installs) with a
fake microphone playing speech and silence, driven over the DevTools protocol."""

import asyncio
import itertools
import json
import shutil
import subprocess
import time

import aiohttp
import pytest
from server_process import SILENCE_SECONDS, Server, media  # noqa: F401 - media: a pytest fixture
from test_serve import SESSION_LINE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed here (CI installs Debian's "
                                                         "package: apt-get install chromium)")


class Browser:
    """Chromium, headless, on ``url``, its microphone playing ``wav`` (looped)."""

    def __init__(self, url, wav, profile):
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required",
             "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, port_file = time.monotonic() + 60, profile / "DevToolsActivePort"
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline and self.process.poll() is None, "Chromium did not start"
            time.sleep(0.2)
        self.port = int(port_file.read_text().split()[0])

    async def evaluate(self, expression):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.port}/json/list") as response:
                page = next(target for target in await response.json() if target["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await ws.send_json({"id": 1, "method": "Runtime.evaluate",
                                    "params": {"expression": expression, "returnByValue": True, "awaitPromise": True}})
                while (message := await ws.receive_json())["id"] != 1:
                    pass
        return message["result"]["result"].get("value")

    def close(self):
        self.process.kill()
        self.process.wait()


def test_the_page_lip_syncs_the_microphone_in_chromium(media, tmp_path):
    with Server(media, "--session_timeout", "3", "--delay", "1") as server:
        browser = Browser(server.url + "?autostart=1", media / "speech_then_silence.wav", tmp_path / "profile")
        try:
            deadline, seen = time.monotonic() + 90, {}
            while time.monotonic() < deadline:  # frames shown for 8 s of the speech's loop
                seen = json.loads(asyncio.run(browser.evaluate("JSON.stringify(window.lipsync)")) or "{}")
                assert seen.get("state") != "error", seen.get("error")
                if seen.get("framesDecoded", 0) >= 8 * 25:
                    break
                time.sleep(1)
            assert seen.get("framesDecoded", 0) >= 8 * 25, seen
            asyncio.run(browser.evaluate("document.getElementById('stop').click()"))
        finally:
            browser.close()
        found = server.wait_for(SESSION_LINE.replace(r"(\w+)", seen["session"]), 30)
    assert seen["policyViolations"] == []  # the page runs under its own Content-Security-Policy
    sent, speaking = int(found.group(1)), int(found.group(2))
    flags = seen["flags"]
    assert sent >= len(flags) >= 8 * 25 * 0.9 and sent >= seen["framesDecoded"]
    # Speaking frames follow the speech (2 s of speech, 2 s of silence, looped): the speech is
    # lip-synced (as much of it as this machine draws in time), each silence one idle stretch
    runs = [(speaks, len(list(group))) for speaks, group in itertools.groupby(flags)]
    assert sum(flags) >= 0.1 * len(flags), runs
    assert sum(1 for speaks, length in runs if not speaks and length >= SILENCE_SECONDS * 25 * 0.6) >= 2, runs
    assert abs(speaking - sum(flags)) <= 0.1 * sent  # the server's count, and the flags the page saw
