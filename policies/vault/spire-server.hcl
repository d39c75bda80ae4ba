# SPIRE server (upstream authority): Vault signs SPIRE's CA under the lab intermediate.
# SPIRE's Vault plugin calls this one endpoint; it needs nothing else from Vault (the default
# policy already lets its token look itself up and renew).
path "pki_int/root/sign-intermediate" {
  capabilities = ["update"]
}
