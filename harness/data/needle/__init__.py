"""The embedded default benchmark "needle": seeded synthetic videos with needle-in-a-haystack questions.

Each question gets its own mp4: a smoothly drifting haystack (a slowly turning colour wave plus soft
blobs on slow orbits, so adjacent frames are as redundant as in real video) with short needle events
rendered over it (a saturated shape, a digit or a word, large enough to survive compression). Three
4-option multiple-choice kinds, in the spirit of VideoNIAH / VNBench:

- retrieval: one needle at a controlled depth; which of four labels appeared?
- ordering: three needles in the three thirds of the video; which of four orderings is right?
- counting: one needle shown 1-4 times; how many times?

Everything derives from the seed, so a dataset is reproducible: same seed, same annotations and same
decoded pixels. `ensure_needle_dataset` builds a dataset once and reuses it while the config matches.

config.py says what a dataset is made of, questions.py plans the questions and their annotations,
render.py draws and encodes the videos, dataset.py builds, caches and reuses a dataset.
"""

from harness.data.needle.config import KINDS, NeedleConfig
from harness.data.needle.dataset import ANNOTATIONS, GENERATOR_VERSION, MANIFEST, ensure_needle_dataset, main, prepare

__all__ = ["ANNOTATIONS", "GENERATOR_VERSION", "KINDS", "MANIFEST", "NeedleConfig", "ensure_needle_dataset", "main",
           "prepare"]  # fmt: skip
