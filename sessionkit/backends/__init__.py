"""Backends: one module per service, each implementing :class:`~sessionkit.backends.base.Backend`.

The AWS backends are imported lazily through the registry; importing this package does not
import boto3.
"""
