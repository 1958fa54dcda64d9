"""The offline default voice: eSpeak NG, from the espeakng-loader wheel (the library and its
data for about 100 languages, no system package, nothing downloaded at run time).

eSpeak NG keeps one synthesiser per process, so calls are serialised by a lock.
"""

import ctypes
import threading
from pathlib import Path

import numpy as np

from dubbing.speech import Speech, check_settings
from media.provenance import ALGORITHMIC
from system.errors import UserError

_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the audio is made
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_UTF8 = 1  # espeakCHARS_UTF8
_NORMAL_WORDS_PER_MINUTE = 175
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()
_LIBRARY = {}


class EspeakEngine:
    """Formant synthesis in many languages; ``voice`` is a language code (en, es, hi, ja, ...)."""

    name = "espeak"
    synthesiser = "eSpeak NG (rule-based formant synthesis)"
    digital_source_type = ALGORITHMIC  # made by rules, not by a trained model

    def __init__(self):
        self._lib, self.sample_rate, self._data = _library()

    def voices(self):
        """The language codes eSpeak NG has (file names under espeak-ng-data/lang)."""
        return sorted({path.name for path in (self._data / "lang").rglob("*") if path.is_file()})

    def check_voice(self, voice, given=None):
        """Refuse, in one line naming ``given`` (the flag, by default --voice VOICE), a voice
        eSpeak NG does not have."""
        with _LOCK:
            self._set_voice(voice, given)

    def _set_voice(self, voice, given=None):
        if self._lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
            raise UserError(f"{given or f'--voice {voice!r}'}: eSpeak NG has no such voice "
                            f"(for example: en, en-us, es, fr, de, hi, ja, zh; {len(self.voices())} in all)")

    def synthesize(self, text, voice="en", rate=1.0, pitch=50):
        check_settings(rate, pitch)
        chunks = []

        @_CALLBACK
        def collect(samples, count, events):
            if count > 0:
                chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            return 0

        encoded = text.encode("utf-8") + b"\0"
        with _LOCK:
            self._set_voice(voice)
            self._lib.espeak_SetParameter(_RATE, round(_NORMAL_WORDS_PER_MINUTE * rate), 0)
            self._lib.espeak_SetParameter(_PITCH, round(pitch), 0)
            self._lib.espeak_SetSynthCallback(collect)
            error = self._lib.espeak_Synth(encoded, len(encoded), 0, 0, 0, _UTF8, None, None)
            self._lib.espeak_Synchronize()
        if error != 0:
            raise UserError(f"eSpeak NG could not speak {text[:40]!r} (error {error})")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return Speech((samples / 32768).astype(np.float32), self.sample_rate)


def _library():
    """(the loaded library, its sample rate, its data folder), initialised once per process."""
    with _LOCK:
        if not _LIBRARY:
            try:
                import espeakng_loader
            except ImportError:
                raise UserError("the offline voice needs the espeakng-loader package: "
                                "pip install -r requirements.txt") from None
            data = Path(espeakng_loader.get_data_path())
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
            lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                         ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, str(data.parent).encode(), 0)
            if rate <= 0:
                raise UserError(f"eSpeak NG did not start with its data in {data}")
            _LIBRARY.update(lib=lib, rate=rate, data=data)
        return _LIBRARY["lib"], _LIBRARY["rate"], _LIBRARY["data"]
