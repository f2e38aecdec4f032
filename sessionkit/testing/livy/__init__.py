"""The emulated Apache Livy server (in process through an ``httpx`` transport)."""

from sessionkit.testing.livy.service import LivyService, LivyTimeline, NamespaceExecutor, answer

__all__ = ["LivyService", "LivyTimeline", "NamespaceExecutor", "answer"]
