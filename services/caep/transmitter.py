"""The CAEP transmitter: turns an admin or risk signal into a signed SET published to SNS.

    POST /v1/events  (Authorization: Bearer <transmitter token>)
    {"event": "session-revoked", "subject": {"format": "complex", "user": {...},
     "session": {...}}, "reason": "admin revoked the session"}
    -> 202 {"jti": "..."}

The SET goes to the CAEP topic, which delivers it (raw) to the receivers' queue. Run it with
`python -m services.caep.transmitter`; its settings come from the environment (see `from_env`).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.caep import sets
from services.common.envconfig import Env
from services.common.web import read_json

log = logging.getLogger("caep.transmitter")


@dataclass
class Transmitter:
    sns: Any
    topic_arn: str
    issuer: str
    audience: str
    private_key_pem: str = field(repr=False)
    key_id: str | None = None

    def emit(
        self,
        event_type: str,
        subject: dict[str, Any],
        event: dict[str, Any] | None = None,
        now: int | None = None,
    ) -> str:
        """Sign one SET and publish it; returns its jti."""
        token, jti = sets.build_set(
            private_key_pem=self.private_key_pem,
            issuer=self.issuer,
            audience=self.audience,
            event_type=event_type,
            subject=subject,
            event=event,
            key_id=self.key_id,
            now=now,
        )
        self.sns.publish(
            TopicArn=self.topic_arn,
            Message=token,
            MessageAttributes={
                "event_type": {"DataType": "String", "StringValue": event_type.rsplit("/", 1)[1]}
            },
        )
        log.info("published SET %s (%s)", jti, event_type)
        return jti


def create_app(transmitter: Transmitter, api_token: str) -> Starlette:
    async def events(request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_token}".encode()):
            return JSONResponse({"error": "a valid bearer token is required"}, status_code=401)
        try:
            body = await read_json(request)
            event_type = sets.EVENT_NAMES[body["event"]]
            extra = {}
            if body.get("reason"):
                extra["reason_admin"] = {"en": str(body["reason"])}
            if "change_direction" in body:
                extra["change_direction"] = str(body["change_direction"])
            jti = transmitter.emit(event_type, body["subject"], extra)
        except (ValueError, KeyError, TypeError) as err:
            allowed = ", ".join(sets.EVENT_NAMES)
            return JSONResponse(
                {"error": f"bad event request ({err}); event is one of: {allowed}"},
                status_code=400,
            )
        return JSONResponse({"jti": jti}, status_code=202)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/events", events, methods=["POST"]),
            Route("/healthz", health),
            Route("/readyz", health),
        ]
    )


def from_env(env: Env | None = None) -> tuple[Transmitter, str]:
    """The transmitter and its API token from the deployment's environment."""
    import boto3

    env = env or Env("caep-transmitter")
    sns = boto3.client("sns", region_name=env.text("AWS_REGION"))
    transmitter = Transmitter(
        sns=sns,
        topic_arn=env.text("CAEP_TOPIC_ARN"),
        issuer=env.text("CAEP_ISSUER"),
        audience=env.text("CAEP_AUDIENCE"),
        private_key_pem=env.text("SET_SIGNING_KEY"),
        key_id=env.optional("SET_KEY_ID"),
    )
    return transmitter, env.text("TRANSMITTER_TOKEN")


def main() -> None:
    from services.common.web import serve

    transmitter, token = from_env(Env("caep-transmitter"))
    serve(create_app(transmitter, token), "caep-transmitter")


if __name__ == "__main__":
    main()
