"""The speech engines dub.py can use, by name: the one place that knows them all (each engine
module imports ``dubbing.speech``, never the other way round)."""

from dubbing.espeak import EspeakEngine
from system.errors import UserError

ENGINES = {engine.name: engine for engine in (EspeakEngine,)}


def speech_engine(name):
    """The engine called ``name``, ready to synthesise."""
    if name not in ENGINES:
        raise UserError(f"--engine {name!r}: choose one of {', '.join(sorted(ENGINES))}")
    return ENGINES[name]()
