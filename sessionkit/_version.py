"""The installed version of sessionkit."""

__version__ = "0.1.0.dev0"
