# The CAEP receiver: reads the same admin token to feed the decision service's deny list.
path "kv/data/lab-system/revocation-admin" {
  capabilities = ["read"]
}
