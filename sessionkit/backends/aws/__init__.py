"""The AWS provider: Glue, EMR Serverless and Athena, and what they share.

``common`` holds the client factory, the error translation, the botocore-model checks and the
log redaction of botocore's body loggers; each service has a module of its own.
"""
