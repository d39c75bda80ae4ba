-- One audit line per decision, as a single JSON object on one line.

local cjson = require("cjson.safe")

local _M = {}

function _M.record(conf, result)
  return {
    event = "lab-authz.decision",
    decision = result.allow and "allow" or "deny",
    status = result.status,
    reason = result.reason,
    subject = result.subject or cjson.null,
    actor = result.actor or cjson.null,
    action = conf.action,
    resource = conf.resource_type .. ":" .. conf.resource_id,
    route = conf.route,
    -- A joined string: an empty Lua table would encode as an object, not an array.
    policies = table.concat(result.policies or {}, ","),
    latency_ms = result.latency_ms and math.floor(result.latency_ms * 1000 + 0.5) / 1000,
    correlation_id = result.correlation_id,
  }
end

function _M.line(conf, result)
  return cjson.encode(_M.record(conf, result)) or '{"event":"lab-authz.decision","audit":"unencodable"}'
end

return _M
