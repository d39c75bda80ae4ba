# The gateway: TLS certificates for the lab's public endpoints, through the lab-tls role only.
path "pki_int/issue/lab-tls" {
  capabilities = ["update"]
}
