"""File formats, in one place: ras spike rasters (text), Auryn's binary spk, weight archives (npz).

- :mod:`superspike.io.ras`: ``time_in_seconds neuron_id`` per line (input and target rasters,
  the run directory's ``target.ras``); :func:`read_ras`, :func:`read_ras_data`, :func:`write_ras`.
- :mod:`superspike.io.spk`: Auryn's binary spike files (the run directory's ``*.spk``);
  :func:`read_spk`, :func:`read_spk_header`, :func:`write_spk`, :class:`SpkWriter`.
- :mod:`superspike.io.weights`: ``weights.npz`` (``w/<connection>`` [pre, post], feedback
  ``b/<edge>`` [src, dst]; earlier ``w0, w1, ...`` chain archives load too); :func:`load_weights`,
  :func:`save_weights`.
- :mod:`superspike.io.files`: :func:`atomic_write`, the one home of temporary file, fsync,
  rename; every file of a run or sweep directory that is written whole (config.toml, target.ras,
  weights.npz, checkpoint.npz, learning_curve.tsv when cut back, sweep_status.json, results.csv,
  sweep.toml) and every ras and converted npz file goes through it. Spike files (spk) are streamed
  and cut back to the checkpoint on resume instead.

Readers validate and raise :class:`superspike.errors.InputFileError` naming the file, the line
(or record, or array) and the problem; they never drop or alter data silently, and never raise
anything else on malformed content. Each module's docstring specifies its format.
"""

from superspike.io.files import atomic_write, write_atomic
from superspike.io.ras import MAX_ID, RasData, RasHeader, read_ras, read_ras_data, write_ras
from superspike.io.spk import SPK_TAG, SpkWriter, read_spk, read_spk_header, steps_per_second, write_spk
from superspike.io.weights import load_weights, save_weights

__all__ = [
    "MAX_ID",
    "SPK_TAG",
    "RasData",
    "RasHeader",
    "SpkWriter",
    "atomic_write",
    "load_weights",
    "read_ras",
    "read_ras_data",
    "read_spk",
    "read_spk_header",
    "save_weights",
    "steps_per_second",
    "write_atomic",
    "write_ras",
    "write_spk",
]
