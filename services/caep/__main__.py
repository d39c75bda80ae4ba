"""The CAEP image serves two roles; the chart's command names one of them."""

import sys

sys.exit(
    "services.caep: run `python -m services.caep.transmitter` or `python -m services.caep.receiver`"
)
