"""The installed version of sessionkit, and the name it is installed under."""

__version__ = "0.1.0.dev0"

#: The distribution name on the package index. The import name stays ``sessionkit``; the
#: name ``sessionkit`` on the index belongs to an unrelated project.
DISTRIBUTION = "sessionkit-spark"


def install_hint(extra: str | None = None) -> str:
    """The command that installs sessionkit, with ``extra`` if given.

    >>> install_hint("spark")
    "pip install 'sessionkit-spark[spark]'"
    """
    if extra:
        return f"pip install '{DISTRIBUTION}[{extra}]'"
    return f"pip install {DISTRIBUTION}"
