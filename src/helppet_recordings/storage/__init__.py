"""Storage backends: S3 (the ``s3`` extra) and the local filesystem."""
