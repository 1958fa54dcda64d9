"""Speech synthesis behind one small interface, so that engines can be added without
touching the rest: each turns text into mono float32 samples.

    engine = dubbing.engines.speech_engine("espeak")
    speech = engine.synthesize("Hello", voice="en", rate=1.0, pitch=50)
    speech.samples, speech.sample_rate

An engine is a class with ``name``, ``synthesiser`` (its name in the output's metadata),
``digital_source_type`` (the IPTC term for what it makes: trainedAlgorithmicMedia for a
neural voice), ``sample_rate`` (of all it makes), ``voices()``, ``check_voice(voice, given)``
(a voice it lacks refused in one line naming ``given``, the flag) and ``synthesize(text, voice, rate,
pitch)``, listed in ``dubbing.engines.ENGINES``. ``rate``
multiplies the voice's normal speaking rate; ``pitch`` is 0..100 with 50 the voice's own.
"""

import dataclasses

import numpy as np

from system.errors import UserError


@dataclasses.dataclass
class Speech:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int

    @property
    def seconds(self):
        return len(self.samples) / self.sample_rate


def check_settings(rate, pitch):
    # Written so that NaN fails too (every comparison with it is false).
    if not 0.25 <= rate <= 4:
        raise UserError(f"--speech_rate {rate}: give a multiple of the normal rate between 0.25 and 4")
    if not 0 <= pitch <= 100:
        raise UserError(f"--pitch {pitch}: give a value from 0 to 100 (50: the voice's own)")


def check_finite(speech, engine, where):
    """``speech`` from ``engine`` for ``where`` (a cue, --text), refused if it holds NaN or
    infinite samples: they would silence or garble the whole mix."""
    if not np.isfinite(speech.samples).all():
        raise UserError(f"{engine.synthesiser} made NaN or infinite samples for {where}; "
                        "the speech engine failed on these words")
    return speech
