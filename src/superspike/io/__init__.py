"""File formats, in one place: ras spike rasters (text), Auryn's binary spk, weight archives (npz).

Readers validate and raise :class:`superspike.errors.InputFileError` naming the file, the line or
record, and the problem; they never drop or alter data silently.
"""

from superspike.io.ras import RasHeader, read_ras, write_ras
from superspike.io.spk import SPK_TAG, SpkWriter, read_spk, write_spk
from superspike.io.weights import load_weights, save_weights

__all__ = [
    "SPK_TAG",
    "RasHeader",
    "SpkWriter",
    "load_weights",
    "read_ras",
    "read_spk",
    "save_weights",
    "write_ras",
    "write_spk",
]
