"""The demo web app: user-to-service (authorization code + PKCE, then a model via the gateway)."""
