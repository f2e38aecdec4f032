"""Emulated Google Cloud services: the Dataproc Serverless sessions API."""
