# The demo app: reads its own static secrets (its OIDC client secret), nothing else in KV.
path "kv/data/lab-apps/demo-app/*" {
  capabilities = ["read"]
}
