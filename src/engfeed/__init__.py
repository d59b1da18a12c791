"""Engineering Feed: company engineering blogs in one fast, searchable page."""

__version__ = "0.1.0"
