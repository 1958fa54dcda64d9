"""Subtitle files are read strictly: every cue, or one line naming what is wrong and where."""

import re

import pytest

from dubbing.subtitles import Cue, read_cues
from system.errors import UserError

SRT = """1
00:00:01,000 --> 00:00:02,500
Hello <i>there</i>,
how are you?

2
00:00:03,000 --> 00:00:04,250 X1:10
{\\an8}Fine, thanks.
"""

VTT = """WEBVTT - a translation

NOTE this block is a comment
that spans lines

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.500 align:start
<v Anna>Hola, ¿qué tal?

01:00:03.000 --> 01:00:04.000
Bien.
"""


def test_srt_and_vtt_cues_are_read_with_their_times_and_text(tmp_path):
    (tmp_path / "a.srt").write_text(SRT, encoding="utf-8")
    assert read_cues(tmp_path / "a.srt") == [Cue(1.0, 2.5, "Hello there, how are you?", 2),
                                             Cue(3.0, 4.25, "Fine, thanks.", 7)]
    (tmp_path / "a.vtt").write_bytes(("\ufeff" + VTT).replace("\n", "\r\n").encode("utf-8"))  # BOM, CRLF
    assert read_cues(tmp_path / "a.vtt") == [Cue(1.0, 2.5, "Hola, ¿qué tal?", 10), Cue(3603.0, 3604.0, "Bien.", 13)]


@pytest.mark.parametrize("content, message", [
    ("1\n00:00:01.000 -> 00:00:02,000\nHi\n", "line 2: expected a timing line"),
    ("1\n00:00:01,00 --> 00:00:02,000\nHi\n", "line 2: malformed timestamp '00:00:01,00 --> 00:00:02,000'"),
    ("1\n00:00:01,000 --> 00:00:61,000\nHi\n", "line 2: malformed timestamp"),
    ("1\n00:00:03,000 --> 00:00:02,000\nHi\n", "line 2: the cue ends (2.000 s) before it starts (3.000 s)"),
    ("1\n00:00:01,000 --> 00:00:02,000\n<i></i>\n", "line 2: the cue has no text"),
    ("1\n00:00:01,000 --> 00:00:03,000\nA\n\n2\n00:00:02,000 --> 00:00:04,000\nB\n",
     "line 6: this cue starts at 2.000 s, before the cue of line 2 ends (3.000 s)"),
    ("\n\n", "no cues found"),
])
def test_a_bad_file_is_one_line_naming_the_line(tmp_path, content, message):
    (tmp_path / "bad.srt").write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=re.escape(message)):
        read_cues(tmp_path / "bad.srt")


def test_wrong_encoding_and_missing_header_are_named(tmp_path):
    (tmp_path / "latin.srt").write_bytes("1\n00:00:01,000 --> 00:00:02,000\nCaf\u00e9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin\.srt line 3: not UTF-8 text"):
        read_cues(tmp_path / "latin.srt")
    (tmp_path / "plain.vtt").write_text("00:01.000 --> 00:02.000\nHi\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1: a WebVTT file starts with WEBVTT"):
        read_cues(tmp_path / "plain.vtt")
    with pytest.raises(UserError, match="--subtitles file not found"):
        read_cues(tmp_path / "none.srt")
