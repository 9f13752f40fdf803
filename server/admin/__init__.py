"""The admin plane's machinery, behind the thin gRPC adapter in `server.services.admin_service`.

`operations` is the in-memory registry of long-running operations and the standard
`google.longrunning.Operations` service over it; `rebuild` runs one index build in a child
process (so it can be cancelled by killing it and never holds the serving process's GIL);
`worker` is that child's entry point; `inputs` resolves what a rebuild may read; `quality` is
the activation gate.
"""
