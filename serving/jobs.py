"""The page's upload form: a face and a speech file in, the file pipeline's lip-synced video
out, one job at a time, with its progress.

Uploads are written under the server's own temporary folder, in a folder per job named by
the server; a client's file names are never used (only a plain extension is kept, as a hint
for the decoders). An upload larger than the limit is refused from its declared length before
any of it is read, and cut off as soon as it goes past the limit when no length is declared."""

import concurrent.futures
import dataclasses
import re
import secrets
import shutil
import time
from pathlib import Path

from lipsync import lip_sync
from system.errors import UserError

KEEP_SECONDS = 3600  # a finished job's files are removed this long after it ends
EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}")


class TooLarge(Exception):
    pass


@dataclasses.dataclass
class Job:
    id: str
    folder: Path
    state: str = "queued"  # queued, running, done, failed
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
        """A job from a multipart POST (face, audio, optional box); raises TooLarge, UserError."""
        self._forget_old()
        if request.content_length is not None and request.content_length > self.max_bytes:
            raise TooLarge(f"the upload is {request.content_length / 2**20:.1f} MB; this server takes at most "
                           f"{self.max_bytes / 2**20:.1f} MB (--max_upload_mb)")
        if sum(job.state in ("queued", "running") for job in self.jobs.values()) >= self.max_jobs:
            raise UserError(f"the server has {self.max_jobs} jobs waiting or running (--max_jobs): try again later")
        job = Job(secrets.token_urlsafe(16), self.folder / secrets.token_hex(8))
        job.folder.mkdir()
        try:
            files, box = await self._read_parts(request, job.folder)
        except BaseException:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise
        missing = [name for name in ("face", "audio") if name not in files]
        if missing:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise UserError(f"the form needs a {' and an '.join(missing)} file")
        options = dataclasses.replace(self.options, face=str(files["face"]), audio=str(files["audio"]),
                                      outfile=str(job.result), box=box, crop=[0, -1, 0, -1], rotate=False,
                                      resize_factor=1, static=False, face_cache=None, progress=False)
        self.jobs[job.id] = job
        self.runner.submit(self._run, job, options)
        return job

    async def _read_parts(self, request, folder):
        reader, files, box, received = await request.multipart(), {}, [-1, -1, -1, -1], 0
        while (part := await reader.next()) is not None:
            if part.name in ("face", "audio") and part.name not in files:
                suffix = Path(part.filename or "").suffix
                path = folder / (part.name + (suffix.lower() if EXTENSION.fullmatch(suffix) else ""))
                with path.open("wb") as handle:
                    while chunk := await part.read_chunk(1 << 16):
                        received += len(chunk)
                        if received > self.max_bytes:
                            raise TooLarge(f"the upload goes past {self.max_bytes / 2**20:.1f} MB, this server's "
                                           "limit (--max_upload_mb)")
                        handle.write(chunk)
                files[part.name] = path
            elif part.name == "box" and (text := (await part.text()).strip()):
                box = parse_box(text)
            else:
                await part.release()
        return files, box

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
            job.state, job.error = "failed", str(error).replace(f"{job.folder}/", "")  # the server's paths stay its own
        except Exception as error:  # noqa: BLE001 - the page says what went wrong; the server goes on
            job.state, job.error = "failed", f"{type(error).__name__}: {error}".replace(f"{job.folder}/", "")
        finally:
            job.ended_at = time.monotonic()
            for upload in job.folder.iterdir():  # the inputs are not kept
                if upload != job.result:
                    upload.unlink(missing_ok=True)

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


def parse_box(text):
    """The form's box: four whole numbers, top bottom left right, as --box."""
    values = text.replace(",", " ").split()
    if len(values) != 4 or not all(re.fullmatch(r"-?\d+", value) for value in values):
        raise UserError(f"the box takes four whole numbers (top bottom left right), not {text[:40]!r}")
    return [int(value) for value in values]
