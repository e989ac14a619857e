"""VirNucPro: viral sequence identification with the published VirNucPro model.

The core library: FASTA input, chunking and six-frame translation, the DNABERT-S and ESM-2
feature extractors, the classifier, model sets and the prediction pipeline. Nothing here
imports ZeroMQ or Textual; torch is imported lazily by the modules that need it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("virnucpro")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
