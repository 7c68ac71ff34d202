"""bapp — the command-line administration tool of the BuildAppsWith pathway-based booking system."""

__version__ = "0.1.0"
