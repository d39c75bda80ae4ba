-- Reads a compact JWS that the jwt plugin has already verified: split, decode, parse.
-- Plain Lua (LuaJIT's bit library and cjson only), so the same file runs in Kong and in the
-- lab's tests. It never trusts what it reads for anything but routing the checks: the
-- signature was checked by the jwt plugin and is checked again by the decision service.

local cjson = require("cjson.safe")
local bit = require("bit")

local byte, char, concat = string.byte, string.char, table.concat
local band, bor, lshift, rshift = bit.band, bit.bor, bit.lshift, bit.rshift

local _M = {}

-- base64url alphabet -> 6-bit value; anything else is a malformed token.
local DECODE = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for i = 1, #alphabet do
    DECODE[byte(alphabet, i)] = i - 1
  end
end

-- Unpadded base64url (RFC 7515 section 2) to bytes; nil for any other input.
function _M.b64url_decode(text)
  local n = #text
  if n % 4 == 1 then
    return nil
  end
  local out, o = {}, 0
  local i = 1
  while i <= n do
    local a, b = DECODE[byte(text, i)], DECODE[byte(text, i + 1) or -1]
    if a == nil or b == nil then
      return nil
    end
    local c = i + 2 <= n and DECODE[byte(text, i + 2)] or false
    local d = i + 3 <= n and DECODE[byte(text, i + 3)] or false
    if c == nil or d == nil then
      return nil
    end
    local word = bor(lshift(a, 18), lshift(b, 12), lshift(c or 0, 6), d or 0)
    o = o + 1
    if c and d then
      out[o] = char(rshift(word, 16), band(rshift(word, 8), 0xff), band(word, 0xff))
    elseif c then
      out[o] = char(rshift(word, 16), band(rshift(word, 8), 0xff))
    else
      out[o] = char(rshift(word, 16))
    end
    i = i + 4
  end
  return concat(out)
end

local function json_object(segment)
  local raw = _M.b64url_decode(segment)
  if raw == nil then
    return nil
  end
  local value = cjson.decode(raw)
  if type(value) ~= "table" or value[1] ~= nil then
    return nil
  end
  return value
end

-- Returns header, claims or nil and a short reason. `max_bytes` bounds the work done on
-- hostile input before anything is decoded.
function _M.parse(token, max_bytes)
  if type(token) ~= "string" or token == "" then
    return nil, nil, "missing verified token"
  end
  if #token > max_bytes then
    return nil, nil, "token too large"
  end
  local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]*)$")
  if h == nil then
    return nil, nil, "malformed token"
  end
  if s == "" then
    return nil, nil, "unsigned token"
  end
  local header, claims = json_object(h), json_object(p)
  if header == nil or claims == nil then
    return nil, nil, "malformed token"
  end
  return header, claims
end

return _M
