"""A local web page for lip-sync: speak into the browser's microphone and watch the face say
it (WebRTC, in real time), or upload a face and a speech file and download the result.

    python serve.py --checkpoint_path checkpoints/wav2lip_gan.pth --face avatar.mp4 --box 120 330 200 380
    python serve.py ... --host 0.0.0.0          # other machines too, with the access token it prints

Listens on 127.0.0.1 unless --host is given; then every request needs the access token
(--token, or one made at start and printed in the address). At the end of each live session
one line: session <id>: <N> frames sent, <M> speaking, latency p50 <x> ms p95 <y> ms.
The work is done by ``serving.app.LipSyncServer`` over ``lipsync.stream.LipSyncStream``.
"""

import signal
import sys

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from lipsync import Options
from lipsync.command_line import add_lipsync_flags, add_stream_flags, check_stream_flags
from system.cli import Terminated, run
from system.errors import UserError, check_number
from system.flags import argument_parser


def build_parser():
    p = argument_parser(__doc__)
    add_lipsync_flags(p, audio=False, outfile=None)
    server = p.add_argument_group("the server")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; anything but loopback needs the access token")
    server.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free one)")
    server.add_argument("--token", default=None,
                        help="access token every request must carry (default: none on loopback, a new random one "
                             "with --host)")
    server.add_argument("--stun", nargs="*", default=None, metavar="URL",
                        help="STUN servers for clients behind NAT (stun:host:port); none are needed on this machine "
                             "or a LAN")
    server.add_argument("--max_sessions", type=int, default=1,
                        help="live sessions at once; more are refused (a 2-core CPU draws one in real time)")
    server.add_argument("--max_upload_mb", type=float, default=200.0, help="largest upload (face and audio together)")
    server.add_argument("--max_jobs", type=int, default=4, help="upload jobs waiting or running at once; more are refused")
    server.add_argument("--session_timeout", type=float, default=10.0,
                        help="seconds without microphone audio after which a live session ends (a closed tab)")
    add_stream_flags(p.add_argument_group("the stream"))
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    import asyncio  # noqa: PLC0415 - after --help
    import secrets  # noqa: PLC0415

    from serving.app import LipSyncServer, ServerSettings, serve  # noqa: PLC0415

    check_number("--port", args.port, 0, 65535, whole=True)
    for flag in ("max_sessions", "max_jobs"):
        check_number(f"--{flag}", getattr(args, flag), 1, whole=True)
    check_number("--max_upload_mb", args.max_upload_mb, 0.001)
    check_number("--session_timeout", args.session_timeout, 0.1)
    check_stream_flags(args)
    for url in args.stun or ():
        if not url.startswith(("stun:", "stuns:")):
            raise UserError(f"--stun takes STUN servers' addresses (stun:HOST:PORT), not {url}")
    settings = ServerSettings(args.host, args.port, args.token, args.max_sessions, args.max_upload_mb, args.max_jobs,
                              args.session_timeout, args.silence_db, args.delay, tuple(args.stun or ()))
    if not settings.loopback and not settings.token:
        settings.token = secrets.token_urlsafe(18)
    options = Options.from_args(args, audio="", outfile="", tool="serve.py")
    if options.syncnet_checkpoint_path:
        raise UserError("serve.py does not score the sync: inference.py --syncnet_checkpoint_path does, on a file")
    if options.short_video != "loop":
        raise UserError("a live stream loops its face video: --short_video is for inference.py")
    server = LipSyncServer(options, settings)
    try:
        stopped_by = asyncio.run(serve(server, lambda address: print(f"Serving on {address}  (Ctrl-C stops)",
                                                                     flush=True)))
    except KeyboardInterrupt:
        print("serve.py stopped", flush=True)
        return 0
    if stopped_by == signal.SIGTERM:
        raise Terminated()  # its usual line and status
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
