"""tapegrad's version, at the bottom of the layers: the tape file header records it."""

__version__ = "0.1.0"
