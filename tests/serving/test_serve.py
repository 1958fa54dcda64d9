"""serve.py: the page, its access rules, live sessions over WebRTC (an aiortc client as the
browser) and the upload form, run as a user runs them."""

import asyncio
import json
import re
import signal
import socket
import time

import aiohttp
import av
import pytest
from server_process import (  # noqa: F401 - media: a pytest fixture
    BOX, SILENCE_SECONDS, SPEECH_SECONDS, Server, client_process, live_session, media)

from media.synthetic import speech_like, write_media

SESSION_LINE = r"session (\w+): (\d+) frames sent, (\d+) speaking, latency p50 (\d+) ms p95 (\d+) ms"


def request(method, url, **kwargs):
    async def go():
        async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as response:
            body = await response.read()
            return response.status, body, response.headers

    return asyncio.run(go())


def raw_request(url, lines, body=b""):
    """An HTTP request written by hand (headers a browser would not send); the status code."""
    host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return int(connection.recv(4096).split(b" ", 2)[1])


def upload(url, files, box=None, token=None, headers=None):
    form = aiohttp.FormData()
    for name, (filename, data) in files.items():
        form.add_field(name, data, filename=filename)
    if box is not None:
        form.add_field("box", box)
    status, body, _ = request("POST", url + "jobs", data=form, headers={**({"X-Token": token} if token else {}),
                                                                         **(headers or {})})
    return status, json.loads(body)


def finished(url, job_id, token=None, timeout=120):
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        _, body, _ = request("GET", f"{url}jobs/{job_id}", headers={"X-Token": token} if token else {})
        job = json.loads(body)
        seen.append(job)
        if job["state"] in ("done", "failed"):
            return job, seen
        time.sleep(0.2)
    raise AssertionError(f"the job did not finish: {seen[-1]}")


@pytest.fixture(scope="module")
def server(media, tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("server_tmp")
    with Server(media, "--max_upload_mb", "1", "--session_timeout", "3", "--delay", "1.5", tmpdir=tmpdir) as running:
        running.tmpdir = tmpdir
        yield running


def test_the_page_is_served_on_loopback_only_and_to_itself(server):
    assert server.url.startswith("http://127.0.0.1:")
    status, body, headers = request("GET", server.url)
    assert status == 200 and b"<video" in body and b"page.js" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, body, _ = request("GET", server.url + "config")
    assert status == 200 and json.loads(body)["max_upload_bytes"] == 2**20 and json.loads(body)["fps"] == 25
    port = server.url.rsplit(":", 1)[1].strip("/")
    # A page of another site: a name of its own pointed at 127.0.0.1 (DNS rebinding), or a form posted from it
    assert raw_request(server.url, ["GET / HTTP/1.1", f"Host: attacker.example:{port}", "Connection: close"]) == 403
    status, body, _ = request("POST", server.url + "offer", json={"sdp": "", "type": "offer"},
                              headers={"Origin": "http://attacker.example"})
    assert status == 403 and "another site" in json.loads(body)["error"]


def test_another_host_needs_the_token_it_prints(media):
    with Server(media, "--host", "0.0.0.0") as server:
        assert server.token and len(server.token) >= 20
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        status, body, _ = request("GET", url + "config")
        assert status == 401 and "access token" in json.loads(body)["error"]
        assert request("GET", url + "config", params={"token": "wrong"})[0] == 401
        assert request("GET", url + "config", params={"token": server.token})[0] == 200
        assert request("GET", url + "config", headers={"X-Token": server.token})[0] == 200
        # The page itself holds no secret (a script tag cannot send the token): served to all
        assert all(request("GET", url + name)[0] == 200 for name in ("", "page.js", "page.css"))
        assert request("GET", url + "config")[0] == 401 and request("POST", url + "offer", json={})[0] == 401


def test_an_upload_is_lip_synced_by_the_file_pipeline_with_progress(server, media):
    files = {"face": ("../../face.mp4", (media / "face.mp4").read_bytes()),  # a client's name is no path here
             "audio": ("speech.wav", (media / "speech.wav").read_bytes())}
    status, job = upload(server.url, files, box=" ".join(map(str, BOX)))
    assert status == 202 and job["state"] in ("queued", "running")
    job, _ = finished(server.url, job["id"])
    assert job["state"] == "done" and job["done"] == job["total"] == 22, job  # 1 s of speech: 22 mel windows
    status, body, headers = request("GET", f"{server.url}jobs/{job['id']}/result")
    assert status == 200 and "lipsynced.mp4" in headers["Content-Disposition"]
    result = server.tmpdir / "result.mp4"
    result.write_bytes(body)
    with av.open(str(result)) as container:
        assert container.streams.video[0].frames == 22 and container.streams.audio
        assert container.metadata["synthetic_content"] == "lip movements" and "serve.py" in container.metadata["software"]
    # The uploads are not kept; nothing was written outside the server's own folder
    kept = [path.name for path in server.tmpdir.rglob("*") if path.is_file() and path != result]
    assert kept == ["lipsynced.mp4"]


def test_a_bad_upload_fails_in_one_line_without_the_servers_paths(server, media):
    status, body = upload(server.url, {"face": ("face.mp4", b"\x00\x01not a video\xff" * 20),
                                       "audio": ("speech.wav", (media / "speech.wav").read_bytes())})
    assert status == 400 and "the face file cannot be read as media" in body["error"]
    video = (media / "face.mp4").read_bytes()  # media, but no speech in it: the job itself fails
    status, job = upload(server.url, {"face": ("face.mp4", video), "audio": ("speech.mp4", video)})
    assert status == 202
    job, _ = finished(server.url, job["id"])
    assert job["state"] == "failed" and "audio" in job["error"], job
    assert "\n" not in job["error"] and str(server.tmpdir) not in job["error"] and "lipsync-serve" not in job["error"]
    status, body = upload(server.url, {"face": ("face.mp4", video)})
    assert status == 400 and body["error"] == "the form has no audio file"
    status, body = upload(server.url, {"face": ("f.mp4", video), "audio": ("a.mp4", video)}, box="1 2 3")
    assert status == 400 and "four whole numbers" in body["error"]
    assert raw_request(server.url, ["GET /jobs/..%2F..%2Fetc%2Fpasswd/result HTTP/1.1",
                                    f"Host: {server.url.split('/')[2]}", "Connection: close"]) == 404
    # A playlist (HLS) would have FFmpeg read the files or addresses it lists: text is no media
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n" + str(media / "face.mp4").encode() + b"\n"
    status, body = upload(server.url, {"face": ("face.m3u8", playlist), "audio": ("a.wav", playlist)})
    assert status == 400 and "text, not media" in body["error"]
    disguised = playlist.replace(b"#EXTINF", b"#\x01\n#EXTINF")  # a control byte in a comment: not text
    status, body = upload(server.url, {"face": ("face.mp4", disguised), "audio": ("a.wav", disguised)})
    assert status == 400 and body["error"] == "the face file cannot be read as media (InvalidDataError)", body
    status, body, _ = request("POST", server.url + "jobs", data=b"not a form")
    assert status == 400 and "multipart" in json.loads(body)["error"]
    assert request("GET", server.url + "jobs/nothing/result")[0] == 404


def test_an_upload_over_the_limit_is_refused_before_it_is_read(server):
    started = time.monotonic()
    # It declares 50 MB and sends a few bytes: refused at once, from its declared length
    assert raw_request(server.url, ["POST /jobs HTTP/1.1", f"Host: {server.url.split('/')[2]}",
                                    "Content-Type: multipart/form-data; boundary=x", "Content-Length: 52428800",
                                    "Connection: close"], b"--x\r\n") == 413
    assert time.monotonic() - started < 10

    async def chunks():  # no declared length: cut off once past the limit
        for _ in range(40):
            yield b"0" * 65536

    form = aiohttp.FormData()
    form.add_field("face", chunks(), filename="face.mp4")
    form.add_field("audio", b"x", filename="a.wav")
    status, body, _ = request("POST", server.url + "jobs", data=form)
    assert status == 413 and "--max_upload_mb" in json.loads(body)["error"]
    assert [path for path in server.tmpdir.rglob("face*")] == []


def test_uploads_at_once_are_each_held_to_the_limit_on_their_own(server, media, tmp_path):
    speech = tmp_path / "long.wav"  # 0.7 MB: two of them go past the 1 MB limit together, not alone
    write_media(speech, speech_like(22.0)[None], 16000, audio_codec="pcm_s16le")
    files = {"face": ("face.mp4", (media / "face.mp4").read_bytes()), "audio": ("long.wav", speech.read_bytes())}

    async def both():
        async def one():
            form = aiohttp.FormData()
            for name, (filename, data) in files.items():
                form.add_field(name, data, filename=filename)
            form.add_field("box", "90 20 30 100")  # bottom above top: the job fails at once
            async with aiohttp.ClientSession() as http, http.post(server.url + "jobs", data=form) as response:
                return response.status
        return await asyncio.gather(one(), one())

    assert asyncio.run(both()) == [202, 202]


def test_a_live_session_sends_lip_synced_frames_and_reports_them(server, media):
    got = asyncio.run(live_session(server.url, media / "speech_then_silence.wav", 7))
    assert got["status"] == 200
    found = server.wait_for(SESSION_LINE.replace(r"(\w+)", got["session"]), 30)
    sent, speaking, p50, p95 = map(int, found.groups())
    # 25 frames a second leave once the stream's delay is over; the client took them
    assert 100 <= sent <= 7 * 25 and got["video"] >= 0.8 * sent and got["sizes"] == {(160, 128)}
    assert got["audio_samples"] > 3 * 48000
    # Speaking frames follow the speech (2 s of speech, then 2 s of silence, looped, from the
    # first frame): none in the silences, and the speech lip-synced (as much of it as this
    # machine draws in time, beside the client's decoding)
    flags = got["flags"]
    assert len(flags) >= 0.9 * sent and got["indices"] == list(range(got["indices"][0], got["indices"][-1] + 1))
    shown = "".join("S" if speaks else "." for speaks in flags)
    period = SPEECH_SECONDS + SILENCE_SECONDS
    in_silence = [speaks for k, speaks in zip(got["indices"], flags) if SPEECH_SECONDS + 0.5 <= k / 25 % period <= period - 0.2]
    assert len(in_silence) >= 25 and not any(in_silence), shown
    assert speaking >= 0.1 * sent and abs(speaking - sum(flags)) <= 0.1 * sent
    assert 0 < p50 <= p95


def test_sessions_beyond_the_limit_are_refused(server, media):
    async def both():
        async def second():
            refused = await live_session(server.url, media / "speech.wav", 0)
            assert refused["status"] == 503 and "--max_sessions" in refused["error"]
        return await live_session(server.url, media / "speech.wav", 2, on_started=second)

    since = server.mark()
    assert asyncio.run(both())["status"] == 200
    server.wait_for(r"session \w+: \d+ frames sent", 30, since)

    async def at_once():  # offers arriving together: one of them gets the slot
        return await asyncio.gather(*(live_session(server.url, media / "speech.wav", 3) for _ in range(3)))

    since = server.mark()
    assert sorted(got["status"] for got in asyncio.run(at_once())) == [200, 503, 503]
    server.wait_for(r"session \w+: \d+ frames sent", 30, since)


def test_a_client_that_vanishes_frees_its_session(server, media):
    since = server.mark()
    assert asyncio.run(live_session(server.url, media / "speech.wav", 3))["status"] == 200  # what stays: the pools
    server.wait_for(r"session \w+: \d+ frames sent", 30, since)
    baseline, since = server.threads(), server.mark()
    client = client_process(server.url, media / "speech.wav", 60)
    try:
        session = server.wait_for(r"session (\w+): opened", 60, since).group(1)
        time.sleep(2)  # frames flowing
        during = server.threads()
    finally:
        client.kill()  # no goodbye: the microphone just stops
        client.wait()
    found = server.wait_for(SESSION_LINE.replace(r"(\w+)", session), 30, since)
    assert int(found.group(1)) > 0 and during > baseline
    deadline = time.monotonic() + 10
    while server.threads() > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.threads() <= baseline, (baseline, during, server.threads())
    assert asyncio.run(live_session(server.url, media / "speech.wav", 0.5))["status"] == 200  # the slot is free again


@pytest.mark.parametrize("signum, status, line", [(signal.SIGINT, 0, "serve.py stopped"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_stopping_the_server_mid_session_ends_it_and_leaves_no_file(media, tmp_path, signum, status, line):
    server = Server(media, tmpdir=tmp_path)
    assert list(tmp_path.glob("lipsync-serve-*"))
    client = client_process(server.url, media / "speech.wav", 60)
    try:
        session = server.wait_for(r"session (\w+): opened", 60).group(1)
        time.sleep(1)
        assert server.stop(signum) == status
    finally:
        client.kill()
        client.wait()
    assert server.wait_for(rf"session {session}: \d+ frames sent", 1)
    assert line in server.lines[-1]
    assert not list(tmp_path.iterdir())
