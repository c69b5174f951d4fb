"""The pure engine: every quantity, plan, diff and explanation. No I/O, no Kubernetes."""
