"""The emulated AWS services (state machines only) answering boto3 clients."""
