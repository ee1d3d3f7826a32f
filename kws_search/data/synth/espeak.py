"""eSpeak NG through ctypes: load the library, speak a word, read its phonemes.

eSpeak NG ships inside the `espeakng-loader` wheel, so the default dataset needs no system
package. eSpeak keeps hidden state between utterances (pitch flutter phase, gain control) and
seeds its breath-noise generator from the clock, so `ESpeak` loads a fresh copy of the library
and `close` unloads it again, and `synth` seeds the noise per utterance: the same call gives the
same samples in any process at any time.
"""

from __future__ import annotations

import _ctypes
import ctypes
from pathlib import Path

import espeakng_loader
import numpy as np

from kws_search.errors import KwsSearchError

MAX_RATE = 450  # eSpeak's words-per-minute ceiling
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_PHONEMES_IPA = 0x02
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SynthError(KwsSearchError, RuntimeError):
    """The speech synthesizer failed (no such voice, no sound); the message names the call."""


class ESpeak:
    """One freshly loaded copy of libespeak-ng; `close` unloads it, so the next starts clean."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib = lib
        self._libc = ctypes.CDLL(None)  # the process's libc, whose rand() eSpeak also calls
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(),
            _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise SynthError(f"eSpeak NG failed to initialize (code {self.sample_rate})")
        self._pieces: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive while the library is
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.Array, n: int, events: int) -> int:
        if wav and n > 0:
            self._pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue

    def _voice(self, voice: str) -> None:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthError(f"eSpeak NG has no voice {voice!r}")

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
              seed: int) -> np.ndarray:
        """Speak `text`; int16 samples [time] at `self.sample_rate`."""
        self._voice(voice)
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch),
                             (_PARAM_RANGE, pitch_range)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        self._lib.espeak_ng_SetRandSeed(seed)  # breath noise; seeded from the clock at init
        self._libc.srand(ctypes.c_uint(seed))
        self._pieces = []
        data = text.encode()
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                     None, None)
        if err != 0:
            raise SynthError(f"eSpeak NG failed to speak {text!r} with {voice!r} (code {err})")
        return np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)

    def phonemes(self, text: str, voice: str) -> str:
        """IPA phonemes of `text` as `voice` would say it."""
        self._voice(voice)
        ptr = ctypes.c_char_p(text.encode())
        return (self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), 0, _PHONEMES_IPA)
                or b"").decode()

    def close(self) -> None:
        self._lib.espeak_Terminate()
        handle = self._lib._handle
        del self._lib
        _ctypes.dlclose(handle)  # drop the library's static state with it

    def __enter__(self) -> ESpeak:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def voice_variants() -> list[str]:
    """Voice variant names shipped with eSpeak NG, plus "" for the plain accent voice."""
    names = sorted(p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v")
                   .iterdir() if p.is_file())
    return ["", *names]


def phonemes(word: str, accent: str = "en-us") -> str:
    """IPA phonemes eSpeak NG uses for `word` in `accent` (to check confusables are distinct)."""
    with ESpeak() as es:
        return es.phonemes(word, accent)
