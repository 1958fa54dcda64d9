"""The new speech over the original soundtrack: muted, or ducked while the speech plays."""

import numpy as np


def ducked(original, speech, active, sample_rate, duck_db, ramp=0.05):
    """``speech`` plus ``original`` (cut or padded with silence to its length), the original
    lowered by ``duck_db`` during each (start, end) second interval of ``active``: fully
    from the interval's start to its end, with linear ramps of ``ramp`` seconds outside it."""
    original = np.pad(original[:len(speech)], (0, max(0, len(speech) - len(original))))
    amount = np.zeros(len(speech), np.float32)  # 0: full level, 1: fully ducked
    for start, end in active:
        first = max(0, int((start - ramp) * sample_rate))
        last = min(len(speech), int(np.ceil((end + ramp) * sample_rate)) + 1)
        times = np.arange(first, last) / sample_rate
        shape = np.interp(times, [start - ramp, start, end, end + ramp], [0, 1, 1, 0])
        amount[first:last] = np.maximum(amount[first:last], shape)
    gain = 1 - (1 - 10 ** (-duck_db / 20)) * amount
    return np.clip(original * gain + speech, -1, 1).astype(np.float32)
