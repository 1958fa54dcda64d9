"""The page's upload form: a face and a speech file in, the file pipeline's lip-synced video
out, one job at a time, with its progress.

Uploads are written under the server's own temporary folder, in a folder per job named by
the server; a client's file names are never used (only a plain extension is kept, as a hint
for the decoders). An upload larger than the limit is refused from its declared length before
any of it is read, and cut off as soon as it goes past the limit when no length is declared."""

import asyncio
import concurrent.futures
import dataclasses
import re
import secrets
import shutil
import time
from pathlib import Path

import av

from lipsync import lip_sync
from system.errors import UserError

KEEP_SECONDS = 3600  # a finished job's files are removed this long after it ends
# Media extensions kept as a hint for the decoders; any other name is dropped (a playlist's,
# .m3u8, would have FFmpeg open the files or addresses it lists).
EXTENSIONS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".wav",
              ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac"}
MAX_PARTS = 8  # fields of one upload form: face, audio, box and a few to spare
STALLED_SECONDS = 30  # an upload that sends nothing this long is dropped (it holds a job's place)
# FFmpeg's demuxers an upload may be: each reads its own file only (not hls, concat, sdp, ...)
DEMUXERS = ",".join(("mov", "mp4", "matroska", "webm", "avi", "wav", "mp3", "aac", "ogg", "flac", "mpegts", "image2",
                     "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "flv", "asf", "w64", "aiff", "caf"))


class TooLarge(UserError):
    pass


class Busy(UserError):
    pass


@dataclasses.dataclass
class Job:
    id: str
    folder: Path
    state: str = "queued"  # uploading, queued, running, done, failed
    done: int = 0  # frames written
    total: int = 0
    error: str = None
    ended_at: float = None

    @property
    def result(self):
        return self.folder / "lipsynced.mp4"

    def status(self):
        return {"id": self.id, "state": self.state, "done": self.done, "total": self.total, "error": self.error}


class UploadJobs:
    """Jobs of the upload form; ``options`` are the server's (its checkpoint and settings),
    each job with its own face, audio and box."""

    def __init__(self, options, folder, max_bytes, max_jobs):
        self.options, self.folder, self.max_bytes, self.max_jobs = options, Path(folder), max_bytes, max_jobs
        self.jobs, self.closing = {}, False
        self.runner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="upload job")

    async def receive(self, request):
        """A job from a multipart POST (face, audio, optional box); raises TooLarge, Busy or
        UserError (a bad form)."""
        self._forget_old()
        if request.content_length is not None and request.content_length > self.max_bytes:
            raise TooLarge(f"the upload is {request.content_length / 2**20:.1f} MB; this server takes at most "
                           f"{self.max_bytes / 2**20:.1f} MB (--max_upload_mb)")
        if self.closing:
            raise Busy("the server is stopping")
        if sum(job.state in ("uploading", "queued", "running") for job in self.jobs.values()) >= self.max_jobs:
            raise Busy(f"the server has {self.max_jobs} jobs uploading, waiting or running (--max_jobs): "
                       "try again later")
        job = Job(secrets.token_urlsafe(16), self.folder / secrets.token_hex(8), state="uploading")
        self.jobs[job.id] = job  # counted from now on, while its files come
        try:
            job.folder.mkdir()
            files, box = await self._read_parts(request, job.folder)
            missing = [name for name in ("face", "audio") if name not in files]
            if missing:
                raise UserError(f"the form has no {' and no '.join(missing)} file")
            if self.closing:
                raise Busy("the server is stopping")
        except BaseException:
            del self.jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)
            raise
        # The server's own face settings are not the upload's: its boxes and points name its face
        pick_face = "largest" if self.options.pick == "largest" else "best"
        options = dataclasses.replace(self.options, face=str(files["face"]), audio=str(files["audio"]),
                                      outfile=str(job.result), box=box, boxes=(), pick_face=pick_face, pick_faces=(),
                                      crop=[0, -1, 0, -1], rotate=False, resize_factor=1, static=False,
                                      face_cache=None, progress=False)
        job.state = "queued"
        self.runner.submit(self._run, job, options)
        return job

    async def _read_parts(self, request, folder):
        try:
            reader = await request.multipart()
        except (AssertionError, KeyError, ValueError) as error:
            raise UserError("the upload must be a multipart form (face, audio, box)") from error
        files, box, received = {}, [-1, -1, -1, -1], [0]  # this upload's bytes so far
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                return files, box
            name = getattr(part, "name", None)
            if name in ("face", "audio") and name not in files:
                files[name] = folder / (name + media_extension(part.filename))
                with files[name].open("wb") as handle:
                    await self._copy(part, received, handle)
                check_media(files[name], name)
            elif name == "box":
                box = parse_box(await self._copy(part, received))
            else:
                await self._copy(part, received)
        raise UserError(f"the form has more than {MAX_PARTS} fields")

    async def _copy(self, part, received, handle=None):
        """A part's bytes into ``handle`` (or returned as text, at most a short line), counted
        against the limit as they come (``received``: [bytes of the upload so far])."""
        kept = b""
        while True:
            try:
                chunk = await asyncio.wait_for(part.read_chunk(1 << 16), STALLED_SECONDS)
            except TimeoutError as error:
                raise UserError(f"the upload stalled for {STALLED_SECONDS} s") from error
            if not chunk:
                break
            received[0] += len(chunk)
            if received[0] > self.max_bytes:
                raise TooLarge(f"the upload goes past {self.max_bytes / 2**20:.1f} MB, this server's limit "
                               "(--max_upload_mb)")
            if handle is not None:
                handle.write(chunk)
            else:
                kept = (kept + chunk)[:100]
        return kept.decode("utf-8", "replace").strip()

    def _run(self, job, options):
        job.state = "running"

        def progress(done, total):
            if self.closing:  # the server stops: the job ends at its next frames
                raise UserError("the server stopped before the job was done")
            job.done, job.total = done, total

        try:
            lip_sync(options, on_frames=progress)
            job.state = "done"
        except UserError as error:
            job.state, job.error = "failed", self._without_paths(str(error), job)
        except Exception as error:  # noqa: BLE001 - the page says what went wrong; the server goes on
            job.state, job.error = "failed", self._without_paths(f"{type(error).__name__}: {error}", job)
        finally:
            job.ended_at = time.monotonic()
            for upload in job.folder.iterdir():  # the inputs are not kept
                if upload != job.result:
                    upload.unlink(missing_ok=True)

    def _without_paths(self, text, job):
        """An error for the page: the server's own paths left out."""
        for path, shown in ((f"{job.folder}/", ""), (str(self.folder), "<uploads>"),
                            (self.options.checkpoint_path, "<checkpoint>")):
            text = text.replace(path, shown)
        return text.splitlines()[0] if text else text

    def _forget_old(self):
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.ended_at is not None and now - job.ended_at > KEEP_SECONDS:
                shutil.rmtree(job.folder, ignore_errors=True)
                del self.jobs[job.id]

    def close(self):
        """Jobs waiting are dropped, the running one stops at its next frames; every file goes."""
        self.closing = True
        self.runner.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def media_extension(filename):
    """The client's extension if it is a media file's, else none."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix in EXTENSIONS else ""


def check_media(path, name):
    """Refuse an upload that is not a plain media file. Text (a playlist or a session
    description: HLS, SDP, ffconcat) would have FFmpeg follow it to other files or addresses;
    the rest must be a container of its own (not one that reads others)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head and not any(byte < 9 or 13 < byte < 32 or byte == 127 for byte in head):
        raise UserError(f"the {name} file is text, not media")
    try:  # FFmpeg opens only the demuxers listed, and those only local files
        with av.open(str(path), options={"protocol_whitelist": "file", "format_whitelist": DEMUXERS}):
            pass
    except (av.FFmpegError, OSError, ValueError) as error:
        raise UserError(f"the {name} file cannot be read as media ({error.__class__.__name__})") from error


def parse_box(text):
    """The form's box: four whole numbers, top bottom left right, as --box."""
    values = text.replace(",", " ").split()
    if len(values) != 4 or not all(re.fullmatch(r"-?\d+", value) for value in values):
        raise UserError(f"the box takes four whole numbers (top bottom left right), not {text[:40]!r}")
    return [int(value) for value in values]
