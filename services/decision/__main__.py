"""Run the decision service: python -m services.decision (settings from the environment)."""

from __future__ import annotations

import sys

import uvicorn

from services.decision.app import configure_logging, create_app, service_from_config
from services.decision.config import Config, ConfigError
from services.decision.policies import PolicyError
from services.decision.tokens import KeyFileError


def main() -> int:
    try:
        config = Config.from_env()
        service = service_from_config(config)
    except (ConfigError, PolicyError, KeyFileError) as err:
        print(f"decision service: {err}", file=sys.stderr)
        return 2
    configure_logging()
    uvicorn.run(
        create_app(service), host=config.host, port=config.port, access_log=False, workers=1
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
