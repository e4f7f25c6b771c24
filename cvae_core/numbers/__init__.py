"""Numbers written by hand: postcodes, phone numbers, amounts, read digit by digit.

    segment.py  the picture -> its digits' marks (ink, ruled lines and specks, splits by the recogniser's evidence)
    reader.py   read_number: each mark through the single-digit preprocessing and the default recogniser
    synth.py    a seeded generator of numbers from MNIST test digits and pen strokes, for the benchmark and tests
"""

from cvae_core.numbers.reader import (
    UNSURE,
    UNSURE_BELOW,
    DigitReading,
    NumberReading,
    Recogniser,
    merge,
    read_number,
    split,
)
from cvae_core.numbers.segment import MAX_DIGITS

__all__ = [
    "MAX_DIGITS", "UNSURE", "UNSURE_BELOW", "DigitReading", "NumberReading", "Recogniser", "merge", "read_number", "split",
]
