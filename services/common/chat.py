"""Calling a model route on the gateway (OpenAI chat format, which Kong's ai-proxy speaks)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class ChatAnswer:
    status: int
    content: str
    """The model's answer, or the gateway's reason when it denied."""

    @property
    def allowed(self) -> bool:
        return self.status == 200


def ask_model(client: httpx.Client, url: str, token: str, model: str, prompt: str) -> ChatAnswer:
    response = client.post(
        url,
        json={"model": model, "messages": [{"role": "user", "content": prompt}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        body = response.json()
    except ValueError:
        return ChatAnswer(response.status_code, response.text[:500])
    if response.status_code != 200:
        reason = body.get("reason") or body.get("message") or body.get("error") or body
        return ChatAnswer(response.status_code, str(reason))
    try:
        return ChatAnswer(200, str(body["choices"][0]["message"]["content"]))
    except (KeyError, IndexError, TypeError):
        return ChatAnswer(502, f"unexpected answer shape: {str(body)[:200]}")
