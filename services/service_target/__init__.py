"""The called half of the service pair: answers only what reaches it through the gateway."""
