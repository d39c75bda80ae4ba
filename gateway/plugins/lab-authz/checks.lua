-- The gateway's own claim checks: audience, scope and the top-level actor. Each returns nil
-- when the check passes, or a status and a short reason. Plain Lua: no Kong calls here.

local _M = {}

local function contains(list, wanted)
  if type(list) ~= "table" then
    return false
  end
  for _, value in ipairs(list) do
    if value == wanted then
      return true
    end
  end
  return false
end

local function starts_with(text, prefix)
  return type(text) == "string" and text:sub(1, #prefix) == prefix
end

-- `aud` is a string or an array of strings (RFC 7519 section 4.1.3).
function _M.audience(claims, wanted)
  local aud = claims.aud
  if aud == wanted or contains(aud, wanted) then
    return nil
  end
  return 401, "wrong audience"
end

-- `scope` is one space-separated string (RFC 8693 section 4.2); every required scope must
-- be in it as a whole word.
function _M.scopes(claims, required)
  local granted = {}
  if type(claims.scope) == "string" then
    for word in claims.scope:gmatch("%S+") do
      granted[word] = true
    end
  end
  for _, scope in ipairs(required or {}) do
    if not granted[scope] then
      return 403, "missing scope " .. scope
    end
  end
  return nil
end

local function text(value)
  return type(value) == "string" and value ~= "" and value or nil
end

-- Only the top-level `act` names the actor: its `client_id` (Keycloak puts the agent's SPIFFE
-- ID there and its service-account user in `sub`), else its `sub` (docs/contracts.md). A
-- nested `act` records earlier hops (RFC 8693 section 4.1) and is never used to authorize.
function _M.actor(claims, conf)
  local act = claims.act
  if act ~= nil and (type(act) ~= "table" or not (text(act.client_id) or text(act.sub))) then
    return nil, 401, "malformed actor claim"
  end
  local actor = act and (text(act.client_id) or text(act.sub)) or nil
  local agent_prefix = conf.agent_prefix

  if actor == nil then
    if conf.actor_required then
      return nil, 403, "actor required"
    end
    -- A token an agent obtained must say it acts for someone: never read it as the user.
    if agent_prefix and starts_with(claims.azp, agent_prefix) then
      return nil, 403, "agent token without actor"
    end
    return nil
  end

  if agent_prefix and not starts_with(actor, agent_prefix) then
    return nil, 403, "actor is not an agent"
  end
  if claims.azp ~= actor then
    return nil, 403, "actor is not the presenting client"
  end
  if not contains(claims.delegates, actor) then
    return nil, 403, "actor not delegated"
  end
  return actor
end

return _M
