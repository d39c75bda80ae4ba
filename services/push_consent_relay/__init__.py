"""The push-consent relay: Keycloak's CIBA authentication channel, answered by push over SNS."""
