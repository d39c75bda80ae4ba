-- One access decision: read the verified token, run the gateway's checks, then ask the
-- decision service (AuthZEN evaluation, docs/contracts.md) and read its answer. Every path
-- that is not an explicit allow from the service ends in a deny. The caller passes the I/O
-- (`deps.post`, `deps.now_ms`), so this module runs unchanged under Kong and in tests.

local cjson = require("cjson.safe")
local token = require("kong.plugins.lab-authz.token")
local checks = require("kong.plugins.lab-authz.checks")

local _M = {}

_M.ALGORITHM = "RS256"

-- Reasons from the service are shown to clients: short, printable, nothing else.
local MAX_REASON = 120

local function deny(result, status, reason)
  result.allow = false
  result.status = status
  result.reason = reason
  return result
end

local function clean_reason(value)
  if type(value) ~= "string" or value == "" then
    return "denied by policy"
  end
  return (value:gsub("[^%w%s%-_.:/,]", "")):sub(1, MAX_REASON)
end

local function policy_ids(value)
  local ids = {}
  if type(value) == "table" then
    for _, id in ipairs(value) do
      if type(id) == "string" then
        ids[#ids + 1] = id
      end
    end
  end
  return ids
end

-- A client's correlation id is kept only if it is plainly an identifier.
function _M.correlation_id(value)
  if type(value) == "string" and #value >= 8 and #value <= 64 and value:match("^[%w%-]+$") then
    return value
  end
  return nil
end

function _M.request_body(conf, claims, actor, raw_token, correlation_id)
  local subject = { type = "user", id = claims.sub }
  if actor then
    subject.properties = { actor = actor }
  end
  return {
    subject = subject,
    action = { name = conf.action },
    resource = { type = conf.resource_type, id = conf.resource_id },
    context = { token = raw_token, correlation_id = correlation_id, route = conf.route },
  }
end

-- Reads the service's answer; only HTTP 200 with `"decision": true` allows.
function _M.read_answer(result, status, body)
  if status ~= 200 then
    return deny(result, 403, "decision service error")
  end
  local answer = cjson.decode(body or "")
  if type(answer) ~= "table" then
    return deny(result, 403, "decision unreadable")
  end
  local context = type(answer.context) == "table" and answer.context or {}
  result.policies = policy_ids(context.policies)
  if answer.decision == true then
    result.allow = true
    result.status = 200
    result.reason = "allowed"
    return result
  end
  local code = context.status == 401 and 401 or 403
  return deny(result, code, clean_reason(context.reason))
end

function _M.evaluate(conf, raw_token, correlation_id, deps)
  local started = deps.now_ms()
  local result = { correlation_id = correlation_id, policies = {} }

  local function finish(r)
    r.latency_ms = deps.now_ms() - started
    return r
  end

  local header, claims, problem = token.parse(raw_token, conf.max_token_bytes)
  if problem then
    return finish(deny(result, 401, problem))
  end
  if header.alg ~= _M.ALGORITHM then
    return finish(deny(result, 401, "token algorithm not allowed"))
  end
  if type(claims.sub) ~= "string" or claims.sub == "" then
    return finish(deny(result, 401, "token has no subject"))
  end
  result.subject = claims.sub

  local status, reason = checks.audience(claims, conf.audience)
  if status then
    return finish(deny(result, status, reason))
  end
  status, reason = checks.scopes(claims, conf.scopes)
  if status then
    return finish(deny(result, status, reason))
  end
  local actor
  actor, status, reason = checks.actor(claims, conf)
  if status then
    return finish(deny(result, status, reason))
  end
  result.actor = actor

  local body = cjson.encode(_M.request_body(conf, claims, actor, raw_token, correlation_id))
  if body == nil then
    return finish(deny(result, 403, "decision request failed"))
  end
  local asked = deps.now_ms()
  local code, answer, err = deps.post(conf.decision_url, body, {
    ["Content-Type"] = "application/json",
    ["X-Correlation-ID"] = correlation_id,
  }, conf.timeout_ms)
  if err or code == nil then
    return finish(deny(result, 403, "decision service unavailable"))
  end
  -- The socket timeout bounds each read, not the whole answer: one that trickles in past
  -- the budget is a deny too, whatever it says.
  if deps.now_ms() - asked > conf.timeout_ms then
    return finish(deny(result, 403, "decision service unavailable"))
  end
  return finish(_M.read_answer(result, code, answer))
end

return _M
