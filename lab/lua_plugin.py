"""Run the gateway's Lua plugin under a real LuaJIT (lupa), with a small stand-in for Kong.

Kong cannot run here, so the plugin's files run as they are shipped: the plain logic modules
and `handler.lua` itself. What Kong and OpenResty would provide comes from here:

- `kong`: the few PDK calls the handler makes (request header, ctx.shared, log, response,
  service request headers), recorded so tests can read what the plugin did;
- `cjson.safe`: backed by Python's json (Kong bundles lua-cjson, a C module);
- `resty.http`: backed by `http_post`, a Python callable that really sends the request
  (default: a keep-alive HTTP/1.1 client for loopback services);
- `kong.tools.uuid` and `ngx.now`/`ngx.update_time`.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lupa.luajit21 import LuaError, LuaRuntime, lua_type

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "lab-authz"
PLUGIN_DIR = ROOT / "gateway" / "plugins" / PLUGIN_NAME

# (url, body, headers, timeout seconds) -> (status, body); raises OSError on failure.
HttpPost = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes]]

_STANDINS = r"""
local py = ...
local null = setmetatable({}, { __tostring = function() return "null" end })

package.preload["cjson.safe"] = function()
  return {
    null = null,
    decode = function(text)
      if type(text) ~= "string" then
        return nil, "expected a string"
      end
      return py.json_decode(text, null)
    end,
    encode = function(value)
      return py.json_encode(value)
    end,
  }
end

package.preload["resty.http"] = function()
  local client = {}
  client.__index = client
  function client:set_timeout(ms)
    self.timeout_ms = ms
  end
  function client:request_uri(url, params)
    local status, body, err = py.http_post(url, params.body, params.headers, self.timeout_ms)
    if status == nil then
      return nil, err
    end
    return { status = status, body = body }
  end
  return {
    new = function()
      return setmetatable({ timeout_ms = 60000 }, client)
    end,
  }
end

package.preload["kong.tools.uuid"] = function()
  return { uuid = py.uuid4 }
end

package.preload["kong.db.schema.typedefs"] = function()
  return {
    no_consumer = { type = "foreign", reference = "consumers", eq = null },
    protocols_http = { type = "set", default = { "http", "https" } },
    url = function(extra)
      local field = { type = "string", custom_validator = "url" }
      for k, v in pairs(extra or {}) do
        field[k] = v
      end
      return field
    end,
  }
end

ngx = {
  now = py.now,
  update_time = function() end,
}
"""

# The `kong` table a request sees: what the handler calls, and where it records the effects.
_KONG = r"""
local request_headers, token = ...
local record = { logs = {}, upstream = {}, response_headers = {}, exited = false }
local lower = string.lower
kong = {
  ctx = { shared = { authenticated_jwt_token = token } },
  request = {
    get_header = function(name)
      return request_headers[lower(name)]
    end,
  },
  log = {
    notice = function(line)
      record.logs[#record.logs + 1] = line
    end,
  },
  response = {
    exit = function(status, body, headers)
      record.exited = true
      record.status = status
      record.body = body
      for k, v in pairs(headers or {}) do
        record.response_headers[k] = v
      end
    end,
    set_header = function(name, value)
      record.response_headers[name] = value
    end,
  },
  service = {
    request = {
      set_header = function(name, value)
        record.upstream[name] = value
      end,
      clear_header = function(name)
        record.upstream[name] = false
      end,
    },
  },
}
return record
"""


class LoopbackClient:
    """A keep-alive HTTP/1.1 client, as resty.http's pool would hold; loopback only."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"LoopbackClient only calls http://127.0.0.1, not {url!r}")
        key = (parts.hostname, parts.port or 80)
        path = parts.path or "/"
        for attempt in (1, 2):
            connection = self._connections.get(key)
            if connection is None:
                connection = http.client.HTTPConnection(*key, timeout=timeout)
                connection.connect()
                # As nginx's cosockets do (tcp_nodelay on): http.client writes the headers and
                # the body separately, and Nagle would hold the body for the peer's delayed ACK.
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._connections[key] = connection
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A pooled connection the server closed: retry once on a fresh one.
                self._drop(key)
                if attempt == 2:
                    raise
            except OSError:
                self._drop(key)
                raise
        raise AssertionError("unreachable")

    def _drop(self, key: tuple[str, int]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)


@dataclass
class Outcome:
    """What the handler did with one request."""

    status: int
    """The status sent to the client (200: passed on to the upstream)."""
    body: dict[str, Any]
    """The JSON body of a deny; empty when passed on."""
    response_headers: dict[str, str]
    upstream_headers: dict[str, str | None]
    """Headers set on the upstream request; None where the plugin cleared one."""
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        return self.body.get("message")


class LabAuthzRuntime:
    """One LuaJIT state with the plugin's modules and the stand-ins loaded."""

    def __init__(self, http_post: HttpPost | None = None, plugin_dir: Path = PLUGIN_DIR):
        self.http_post = http_post or LoopbackClient()
        self.lua = LuaRuntime(unpack_returned_tuples=True, register_eval=False)
        py = self.lua.table_from(
            {
                "json_decode": self._json_decode,
                "json_encode": self._json_encode,
                "http_post": self._http_post,
                "uuid4": lambda: str(uuid.uuid4()),
                "now": time.time,
            }
        )
        self.lua.execute(_STANDINS, py)
        preload = self.lua.eval("package.preload")
        loader = self.lua.eval("function(path) return function() return dofile(path) end end")
        for path in sorted(plugin_dir.glob("*.lua")):
            preload[f"kong.plugins.{PLUGIN_NAME}.{path.stem}"] = loader(str(path))
        self.require = self.lua.eval("require")
        self.access = self.require(f"kong.plugins.{PLUGIN_NAME}.access")
        self._kong = self.lua.compile(_KONG)
        self._handler = self.require(f"kong.plugins.{PLUGIN_NAME}.handler")
        self._null = self.lua.eval('require("cjson.safe").null')
        self._is_null = self.lua.eval(
            'function(v) return rawequal(v, require("cjson.safe").null) end'
        )

    # --- stand-in plumbing -------------------------------------------------------------

    def _json_decode(self, text: str | bytes, null: Any) -> Any:
        try:
            return self.to_lua(json.loads(text), null)
        except (ValueError, RecursionError) as err:
            return None, f"invalid JSON: {err}"

    def _json_encode(self, value: Any) -> Any:
        try:
            return json.dumps(self.to_python(value), separators=(",", ":"))
        except (TypeError, ValueError) as err:
            return None, str(err)

    def _http_post(self, url: str, body: str, headers: Any, timeout_ms: float) -> Any:
        try:
            status, answer = self.http_post(
                url, body.encode(), dict(headers.items()), timeout_ms / 1000
            )
        except (OSError, http.client.HTTPException) as err:
            return None, None, f"{type(err).__name__}: {err}"
        return status, answer.decode("utf-8", "replace")

    def to_lua(self, value: Any, null: Any = None) -> Any:
        null = self._null if null is None else null
        if value is None:
            return null
        if isinstance(value, dict):
            return self.lua.table_from({k: self.to_lua(v, null) for k, v in value.items()})
        if isinstance(value, list):
            return self.lua.table_from([self.to_lua(v, null) for v in value])
        return value

    def to_python(self, value: Any) -> Any:
        if lua_type(value) != "table":
            if lua_type(value) in ("function", "userdata", "thread"):
                raise TypeError(f"cannot encode a Lua {lua_type(value)}")
            return value
        if self._is_null(value):
            return None
        items = list(value.items())
        keys = [k for k, _ in items]
        if (
            items
            and all(isinstance(k, int) for k in keys)
            and sorted(keys) == list(range(1, len(keys) + 1))
        ):
            return [self.to_python(value[i]) for i in range(1, len(keys) + 1)]
        return {str(k): self.to_python(v) for k, v in items}

    def table(self, value: Mapping[str, Any]) -> Any:
        """A plugin config (or any dict) as a Lua table."""
        return self.to_lua(dict(value))

    # --- entry points ------------------------------------------------------------------

    def evaluate(self, conf: Mapping[str, Any], token: str | None, correlation_id: str) -> Any:
        """The logic alone (access.evaluate), with the real HTTP call: a Lua result table."""
        deps = self.lua.table_from({"post": self._lua_post(), "now_ms": self._now_ms()})
        return self.access.evaluate(self.table(conf), token, correlation_id, deps)

    def _lua_post(self) -> Any:
        return self.lua.eval(
            "function(url, body, headers, timeout_ms)"
            " local c = require('resty.http').new(); c:set_timeout(timeout_ms)"
            " local res, err = c:request_uri(url, {method='POST', body=body, headers=headers})"
            " if not res then return nil, nil, err end"
            " return res.status, res.body end"
        )

    def _now_ms(self) -> Any:
        return self.lua.eval("function() return ngx.now() * 1000 end")

    def handle(
        self,
        conf: Mapping[str, Any],
        token: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> Outcome:
        """Run handler.lua's access phase for one request, as Kong would after jwt."""
        lowered = self.lua.table_from({k.lower(): v for k, v in (headers or {}).items()})
        record = self._kong(lowered, token)
        try:
            self._handler.access(self._handler, self.table(conf))
        except LuaError as err:
            raise AssertionError(f"the plugin raised: {err}") from None
        upstream = {k: (None if v is False else v) for k, v in record.upstream.items()}
        audit = [json.loads(line) for line in record.logs.values()]
        if record.exited:
            body = self.to_python(record.body) if lua_type(record.body) == "table" else {}
            return Outcome(
                record.status, body, dict(record.response_headers.items()), upstream, audit
            )
        return Outcome(200, {}, dict(record.response_headers.items()), upstream, audit)

    def close(self) -> None:
        if isinstance(self.http_post, LoopbackClient):
            self.http_post.close()
