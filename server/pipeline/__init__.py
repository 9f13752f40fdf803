"""The three serving stages (retrieval, ranking, fairness re-ranking) and their orchestration.

Nothing here imports grpc: the services convert protos to these types and back.
"""
