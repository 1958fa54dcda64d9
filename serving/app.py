"""serve.py's server on aiohttp: the page, its live sessions (WebRTC) and its upload jobs.

Reachable from this machine only (127.0.0.1) unless a host is given, and then every request
needs the access token. On loopback without a token, requests must name the server itself
as their Host (a web page cannot point a name of its own at 127.0.0.1 and drive the server)
and a browser's form or fetch from another site is refused by its Origin."""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import json
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path

from aiohttp import web

from lipsync.pipeline import generator_for
from lipsync.stream import SILENCE_DB, LipSyncStream
from lipsync.stream_face import StreamFace
from serving.jobs import Busy, TooLarge, UploadJobs
from serving.live import LiveSession, in_thread
from system.errors import UserError

PAGE = Path(__file__).with_name("page")
PUBLIC = {"/": "index.html", "/page.js": "page.js", "/page.css": "page.css"}  # the page, served without a token
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
HEADERS = {"Content-Security-Policy": "default-src 'self'; media-src 'self' blob: mediastream:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
EXECUTOR_THREADS = 4
OFFER_SECONDS = 10  # to send the offer's few kilobytes


@dataclasses.dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str = None  # required of every request when set
    max_sessions: int = 1  # live sessions at once (a 2-core CPU draws one in real time)
    max_upload_mb: float = 200.0
    max_jobs: int = 4  # upload jobs waiting or running
    session_timeout: float = 10.0  # seconds without microphone audio that end a session
    silence_db: float = SILENCE_DB
    delay: float = None
    stun: tuple = ()  # STUN servers' URLs, for clients behind NAT

    @property
    def loopback(self):
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(self.host).is_loopback
        return self.host == "localhost"


class LipSyncServer:
    """The face and the generator prepared once, shared by every live session."""

    def __init__(self, options, settings):
        if not settings.loopback and not settings.token:
            raise UserError(f"--host {settings.host} opens the server to other machines: it needs an access token "
                            "(--token, or let serve.py make one)")
        self.options, self.settings = options, settings
        self.sessions, self.stopping = {}, False
        self.generator = generator_for(options)
        self.face = StreamFace(options, self.generator.device)  # its boxes, found once
        self.folder = tempfile.mkdtemp(prefix="lipsync-serve-")
        self.jobs = UploadJobs(options, self.folder, int(settings.max_upload_mb * 2**20), settings.max_jobs)

    def application(self):
        app = web.Application(middlewares=[self._guard])
        app.add_routes([*(web.get(path, self._page) for path in PUBLIC), web.get("/config", self._config),
                        web.post("/offer", self._offer), web.post("/jobs", self._new_job),
                        web.get("/jobs/{id}", self._job), web.get("/jobs/{id}/result", self._result)])
        app.on_shutdown.append(self._shutdown)  # before the requests still running are waited for,
        app.on_cleanup.append(self._cleanup)  # and after
        return app

    @web.middleware
    async def _guard(self, request, handler):
        try:
            response = access_refusal(self.settings, request) or await handler(request)
        except web.HTTPException as error:
            response = refusal(error.status, error.reason)
        except Exception as error:  # noqa: BLE001 - one line here and for the page; the server goes on
            print(f"{request.method} {request.path} failed: {type(error).__name__}: {error}", file=sys.stderr,
                  flush=True)
            response = refusal(500, f"the server failed: {type(error).__name__}")
        response.headers.update(HEADERS)
        return response

    async def _page(self, request):
        name = PUBLIC[request.path]
        return web.Response(text=(PAGE / name).read_text(), content_type=CONTENT_TYPES[Path(name).suffix])

    async def _config(self, request):
        s = self.settings
        return web.json_response({"max_upload_bytes": int(s.max_upload_mb * 2**20), "max_sessions": s.max_sessions,
                                  "fps": self.face.fps, "stun": list(s.stun)})

    async def _offer(self, request):
        try:  # read first, with a deadline: a client that sends nothing holds no slot
            offer = await asyncio.wait_for(request.json(), OFFER_SECONDS)
            sdp, kind = str(offer["sdp"]), str(offer["type"])
        except TimeoutError:
            return refusal(408, f"the offer did not come within {OFFER_SECONDS} s")
        except (ValueError, KeyError, TypeError, RecursionError):
            return refusal(400, "the offer must be JSON with sdp and type")
        if self.stopping or len(self.sessions) >= self.settings.max_sessions:
            return refusal(503, "the server is stopping" if self.stopping else
                           f"the server is busy: {len(self.sessions)} of {self.settings.max_sessions} live sessions "
                           "taken (--max_sessions); try again later")
        placeholder = object()  # the slot is taken from here on (no await since the count), while the stream opens
        self.sessions[id(placeholder)] = placeholder
        try:
            try:
                stream = await in_thread(self._stream)  # opens the face video, starts its threads
            except Exception as error:  # noqa: BLE001 - one line for the page and the log
                print(f"a session could not open: {error}", file=sys.stderr, flush=True)
                return refusal(500, f"the stream could not open: {error}")
        finally:
            del self.sessions[id(placeholder)]
        try:
            session = LiveSession(stream, self.settings.session_timeout, self._closed, self.settings.stun)
        except BaseException:
            await in_thread(stream.stop)
            raise
        self.sessions[session.id] = session
        try:
            answer = await session.answer(sdp, kind)
        except Exception as error:  # noqa: BLE001 - a malformed offer ends its session only
            await session.close()
            return refusal(400, f"the offer was refused: {error}")
        if self.stopping:  # the server began to stop while this session opened
            await session.close()
            return refusal(503, "the server is stopping")
        print(f"session {session.id}: opened ({len(self.sessions)} of {self.settings.max_sessions})", flush=True)
        return web.json_response(answer)

    def _stream(self):
        s = self.settings
        return LipSyncStream.from_options(self.options, realtime=True, silence_db=s.silence_db, delay=s.delay,
                                          generator=self.generator, boxes=self.face.boxes)

    def _closed(self, session):
        self.sessions.pop(session.id, None)

    async def _new_job(self, request):
        try:
            job = await self.jobs.receive(request)
        except TooLarge as error:
            return refusal(413, str(error))
        except Busy as error:
            return refusal(503, str(error))
        except UserError as error:
            return refusal(400, str(error))
        return web.json_response(job.status(), status=202)

    async def _job(self, request):
        job = self.jobs.jobs.get(request.match_info["id"])
        return web.json_response(job.status()) if job else refusal(404, "no such job (finished jobs are kept an hour)")

    async def _result(self, request):
        job = self.jobs.jobs.get(request.match_info["id"])
        if job is None or job.state != "done":
            return refusal(404, "no lip-synced video for this job (yet)")
        return web.FileResponse(job.result, headers={"Content-Disposition": 'attachment; filename="lipsynced.mp4"'})

    async def _shutdown(self, app):
        self.stopping = self.jobs.closing = True  # requests still running refuse from here on
        await self._close_sessions()

    async def _cleanup(self, app):
        await self._close_sessions()
        await in_thread(self.jobs.close)

    async def _close_sessions(self):
        await asyncio.gather(*(session.close() for session in list(self.sessions.values())
                               if isinstance(session, LiveSession)), return_exceptions=True)


def access_refusal(s, request):
    """Why the access rules refuse ``request`` (a response), or None; ``s``: ServerSettings."""
    if s.token and request.path not in PUBLIC:  # the page holds no secret: its address carries the token
        given = request.headers.get("X-Token") or request.query.get("token") or ""
        if not secrets.compare_digest(given.encode("utf-8", "surrogateescape"), s.token.encode()):
            return refusal(401, "this server needs its access token: open the address serve.py printed, with ?token=")
    elif not s.token and (request.host or "").rsplit(":", 1)[0].strip("[]") not in LOOPBACK_NAMES + (s.host,):
        return refusal(403, f"the Host {request.host} is not this server's")
    origin = request.headers.get("Origin")
    if request.method == "POST" and origin and origin.split("://", 1)[-1] != request.host:
        return refusal(403, f"requests from {origin} are refused (another site)")
    return None


def refusal(status, message):
    """A refused request: one line for the page, as JSON."""
    return web.Response(status=status, text=json.dumps({"error": message}), content_type="application/json")


async def serve(server, on_ready=print):
    """Serve until cancelled (Ctrl-C) or SIGTERM, returned once every session is closed;
    ``on_ready(address)`` once it listens."""
    s = server.settings
    loop, terminated = asyncio.get_running_loop(), asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not Unix, not the main thread
        # the loop's own handler: SIGTERM stops the server as Ctrl-C does, not midway through a callback
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
    # aiortc's encoders and aiohttp's file reads run in the loop's executor: its threads all
    # started now, so that the server's thread count at rest stays what it is.
    executor = concurrent.futures.ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="serve")
    started = threading.Barrier(EXECUTOR_THREADS)
    for _ in range(EXECUTOR_THREADS):
        executor.submit(started.wait)
    loop.set_default_executor(executor)
    runner = web.AppRunner(server.application(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, s.host, s.port)
        try:
            await site.start()
        except OSError as error:
            raise UserError(f"cannot listen on {s.host}:{s.port}: {error.strerror or error}") from error
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        on_ready(f"http://{shown}:{port}/" + (f"?token={s.token}" if s.token else ""))
        await terminated.wait()
        return signal.SIGTERM
    finally:
        await runner.cleanup()
