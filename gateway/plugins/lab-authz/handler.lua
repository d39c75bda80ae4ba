-- The lab's authorization plugin: Kong's edge around `access.lua`. Every Kong, nginx and
-- HTTP call of the plugin is in this file; the decision logic is in plain modules.
--
-- It runs after the bundled jwt plugin (priority 1450), which has verified the signature,
-- issuer and expiry and left the token in kong.ctx.shared, and before rate-limiting (910),
-- so a denied request never reaches the model or counts against a consumer's limit.

local access = require("kong.plugins.lab-authz.access")
local audit = require("kong.plugins.lab-authz.audit")
local http = require("resty.http")
local uuid = require("kong.tools.uuid").uuid

local LabAuthz = {
  PRIORITY = 1000,
  VERSION = "1.0.0",
}

local CORRELATION_HEADER = "X-Correlation-ID"

local function post(url, body, headers, timeout_ms)
  local client = http.new()
  -- Each of connect, send and read is bounded here; access.lua also denies an answer whose
  -- whole exchange took longer than the budget.
  client:set_timeout(timeout_ms)
  local res, err = client:request_uri(url, {
    method = "POST",
    body = body,
    headers = headers,
    keepalive_timeout = 60000,
    keepalive_pool = 32,
  })
  if not res then
    return nil, nil, err
  end
  return res.status, res.body
end

local function now_ms()
  ngx.update_time()
  return ngx.now() * 1000
end

local DEPS = { post = post, now_ms = now_ms }

function LabAuthz:access(conf)
  local correlation_id = access.correlation_id(kong.request.get_header(CORRELATION_HEADER))
    or uuid()
  local result = access.evaluate(
    conf, kong.ctx.shared.authenticated_jwt_token, correlation_id, DEPS
  )
  kong.log.notice(audit.line(conf, result))

  if not result.allow then
    local headers = { [CORRELATION_HEADER] = correlation_id }
    -- RFC 6750 challenges: a token problem, or a scope the token lacks.
    if result.status == 401 then
      headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    elseif result.reason:find("^missing scope") then
      headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope"'
    end
    return kong.response.exit(result.status, {
      message = result.reason,
      correlation_id = correlation_id,
    }, headers)
  end

  -- The upstream learns who was allowed from the gateway only, never from the client.
  kong.service.request.set_header(CORRELATION_HEADER, correlation_id)
  kong.service.request.set_header("X-Lab-Subject", result.subject)
  if result.actor then
    kong.service.request.set_header("X-Lab-Actor", result.actor)
  else
    kong.service.request.clear_header("X-Lab-Actor")
  end
  kong.response.set_header(CORRELATION_HEADER, correlation_id)
end

return LabAuthz
