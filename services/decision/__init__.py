"""The lab's decision service: AuthZEN evaluation over Cedar, with the revocation deny list.

The gateway asks it for every request. It verifies the raw token again with the deploy-time
key, builds one Cedar request from the verified claims, and decides with cedarpy (local) or
Verified Permissions (aws). Any error is a deny with a reason.
"""
