"""segprep: exact, fast and safe semantic-segmentation dataset preparation for driving scenes."""

__version__ = "0.1.0"
