"""One-hot encoding of promoters through a byte lookup table (no Python loop per base).

Columns are A, C, G, T. N, the other IUPAC ambiguity letters and padding are an all-zero row;
`as_model_input` turns those rows into background frequencies when a config asks for it.
Promoters are aligned on their proximal (3', ORF-side) end: longer ones lose bases at the distal
end, shorter ones get N padding there.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

ALPHABET = "ACGT"

_CODE = np.full(256, 4, dtype=np.uint8)
for _index, _letter in enumerate(ALPHABET):
    _CODE[ord(_letter)] = _index
    _CODE[ord(_letter.lower())] = _index
_ONE_HOT = np.vstack([np.eye(4, dtype=np.uint8), np.zeros((1, 4), dtype=np.uint8)])
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def fit_length(sequence: str, length: int) -> str:
    """Trim or N-pad a promoter at its distal (5') end to exactly `length` letters."""
    if len(sequence) >= length:
        return sequence[len(sequence) - length:]
    return "N" * (length - len(sequence)) + sequence


def one_hot(sequences: Iterable[str], length: int) -> np.ndarray:
    """Encode promoters as an N x length x 4 uint8 array, aligned on the proximal end."""
    fitted = [fit_length(s, length) for s in sequences]
    if not fitted:
        return np.zeros((0, length, 4), dtype=np.uint8)
    codes = _CODE[np.frombuffer("".join(fitted).encode("ascii"), dtype=np.uint8)]
    return _ONE_HOT[codes].reshape(len(fitted), length, 4)


def decode(one_hot_array: np.ndarray) -> list[str]:
    """Turn an N x L x 4 one-hot array back into strings; all-zero rows read as N."""
    array = np.asarray(one_hot_array)
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    codes = np.where(array.sum(axis=-1) > 0, array.argmax(axis=-1), 4)
    return [letters[row].tobytes().decode("ascii") for row in codes.reshape(-1, array.shape[-2])]


def as_model_input(one_hot_array: np.ndarray, background: Sequence[float] | None = None) -> np.ndarray:
    """float32 model input; all-zero (N or padding) rows become `background` when it is given."""
    values = one_hot_array.astype(np.float32)
    if background is not None:
        unknown = values.sum(axis=-1) == 0
        values[unknown] = np.asarray(background, dtype=np.float32)
    return values


def reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]
