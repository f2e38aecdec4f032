"""Apache Livy sessions: Azure Synapse, Microsoft Fabric, HDInsight, EMR's Livy, on-premises.

Needs ``httpx``: ``pip install 'sessionkit-spark[livy]'``.
"""

from sessionkit.backends.livy.backend import LivyBackend

__all__ = ["LivyBackend"]
