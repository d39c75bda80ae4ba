# The decision service: reads the token that guards its revocation admin API.
path "kv/data/lab-system/revocation-admin" {
  capabilities = ["read"]
}
