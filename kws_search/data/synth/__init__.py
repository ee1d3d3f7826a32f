"""The default dataset: keyword, command and confusable words spoken by several speech
engines (eSpeak NG, SVOX Pico, hibari), offline.

`synthesize(root, SynthConfig(...))` writes a Speech Commands style folder. The modules:
`espeak` (the ctypes binding), `engines` (each engine behind one class, phoneme alphabets),
`plan` (config, words, speakers, split, every clip's draw), `render` (the worker that speaks
and writes a chunk of clips), `noise` (background recordings), `dataset` (the folder, the
worker pool, the lists). Files depend only on the seed and the engines installed: every random
choice is drawn in the parent, and each chunk is rendered by a freshly loaded engine with its
noise seeded per clip, whatever the worker count or scheduling.
"""

from kws_search.data.synth.dataset import prepare_root, synthesize
from kws_search.data.synth.espeak import ESpeak, SynthError, phonemes
from kws_search.data.synth.noise import BABBLE_SENTENCES, NOISE_KINDS, noise_recording, write_noise
from kws_search.data.synth.plan import (
    ACCENTS,
    COMMAND_WORDS,
    CONFUSABLE_WORDS,
    SynthConfig,
    plan_clips,
    speaker_ids,
)
from kws_search.data.synth.render import trim_word

__all__ = [
    "ACCENTS", "BABBLE_SENTENCES", "COMMAND_WORDS", "CONFUSABLE_WORDS", "NOISE_KINDS",
    "ESpeak", "SynthConfig", "SynthError", "noise_recording", "phonemes", "plan_clips",
    "prepare_root", "speaker_ids", "synthesize", "trim_word", "write_noise",
]
