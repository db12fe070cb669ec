"""Generated gRPC stubs of proto/peanut/v1/peanut.proto (do not edit by hand).

    from peanut_server.api import peanut_pb2, peanut_pb2_grpc

Regenerate with `python -m peanut_server.api.generate`.
"""
