"""Where inputs come from and outputs go: places, scopes, s3, https, the data volume."""
