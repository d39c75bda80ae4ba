"""CAEP over SSF: a transmitter that signs Security Event Tokens, a receiver that acts on them."""
