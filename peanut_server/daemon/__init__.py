"""The PEANUT daemon: gRPC service, persistent job queue, one worker."""
