"""The agent: user-to-agent-to-service (CIBA consent, token exchange with its SVID, model)."""
