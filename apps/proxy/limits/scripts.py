"""The two Lua scripts of apps.proxy.limits: one EVALSHA admits a request, one charges it."""

# KEYS: requests hash, tokens hash, month counter. ARGV: rpm, tpm, est_tokens, budget (0 = none).
# Returns {status, retry_ms, used}.
ADMIT_LUA = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec + tonumber(t[2]) / 1000000
local W = 60

local function window(key)
  local flat = redis.call('HGETALL', key)
  local total, live, dead = 0, {}, {}
  for i = 1, #flat, 2 do
    local s, n = tonumber(flat[i]), tonumber(flat[i + 1])
    if sec - s >= W then dead[#dead + 1] = flat[i] else total = total + n; live[#live + 1] = {s, n} end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  return total, live
end

local function wait_ms(live, total, need, limit)
  for _, b in ipairs(live) do
    total = total - b[2]
    if total + need <= limit then return math.ceil((b[1] + W - now) * 1000) end
  end
  return W * 1000
end

local budget = tonumber(ARGV[4])
if budget > 0 then
  local used = redis.call('GET', KEYS[3])
  if not used then return {5, 0, 0} end
  if tonumber(used) >= budget then return {4, 0, tonumber(used)} end
end
local tpm, est = tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 then
  if est > tpm then return {3, 0, est} end
  local total, live = window(KEYS[2])
  if total + est > tpm then return {2, wait_ms(live, total, est, tpm), total} end
end
local rpm = tonumber(ARGV[1])
if rpm > 0 then
  local total, live = window(KEYS[1])
  if total + 1 > rpm then return {1, wait_ms(live, total, 1, rpm), total} end
  redis.call('HINCRBY', KEYS[1], sec, 1)
  redis.call('EXPIRE', KEYS[1], W + 1)
end
return {0, 0, 0}
"""

# KEYS: tokens hash, month counter, dirty set. ARGV: tokens, count tpm (0/1), count month (0/1),
# dirty member, month ttl. Returns 5 (seed the month first) or 0.
CHARGE_LUA = """
local n = tonumber(ARGV[1])
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return 5 end
if ARGV[2] == '1' then
  redis.call('HINCRBY', KEYS[1], redis.call('TIME')[1], n)
  redis.call('EXPIRE', KEYS[1], 61)
end
if ARGV[3] == '1' then
  redis.call('INCRBY', KEYS[2], n)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
  redis.call('SADD', KEYS[3], ARGV[4])
end
return 0
"""
