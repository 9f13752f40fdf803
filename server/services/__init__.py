"""Thin gRPC adapters: validate and convert protos, call the pipeline, convert back."""
