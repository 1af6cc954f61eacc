"""One class per API area; each method is one endpoint (build, send, structure)."""
