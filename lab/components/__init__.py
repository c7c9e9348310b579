"""One module per lab component; each renders its configs and declares its programs."""
