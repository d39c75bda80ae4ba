"""`python -m services.push_consent_relay`: the relay (the approver is its own module)."""

from services.push_consent_relay.relay import main

main()
