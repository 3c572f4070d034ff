"""The storage tests use the root fixtures (`s3_server` among them: moto, then radosgw)."""
