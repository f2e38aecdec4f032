"""Google Cloud backends: Dataproc Serverless interactive sessions (``dataproc``).

The Google SDK is imported only by the modules of this package, and only when a backend from it
is used: ``import sessionkit`` never imports ``google``.
"""
