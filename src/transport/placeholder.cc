// replaced by the transport backends
