"""The calling half of the service pair: service-to-service with its SVID, no secret."""
