"""The bridging subsidy's domain: the frame, the libraries, the rounding rule, the refusals."""
