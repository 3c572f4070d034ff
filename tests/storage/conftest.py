"""The storage tests use the root fixtures (`s3_endpoint` among them)."""
