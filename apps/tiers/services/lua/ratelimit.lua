-- Token bucket plus minute/hour/day windows, decided and spent atomically in one round trip.
-- A port of apps/tiers/domain/ratelimit.py:decide; keep the two in step (shared tests run both).
-- KEYS: 1 bucket hash, 2 minute counter prefix, 3 hour prefix, 4 day prefix, 5 auth generation
-- ARGV: 1 now_ms ('' = Redis TIME), 2 rate_milli_per_s, 3 burst, 4 per_minute, 5 per_hour, 6 per_day, 7 cost
local now_ms
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now_ms = tonumber(ARGV[1])
end
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[7])
local MICRO = 1000000
local capacity = burst * MICRO

local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = capacity
if b[1] then
  local elapsed = now_ms - tonumber(b[2])
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(capacity, tonumber(b[1]) + elapsed * rate)
end

local need = cost * MICRO
local denied = ''
local retry = 0
if tokens < need then
  denied = 'burst'
  retry = math.ceil((need - tokens) / rate)
end

local names = {'minute', 'hour', 'day'}
local lengths = {60000, 3600000, 86400000}
local limits = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local wkeys = {}
local used = {}
local ends = {}
for i = 1, 3 do
  local idx = math.floor(now_ms / lengths[i])
  wkeys[i] = KEYS[i + 1] .. ':' .. idx
  ends[i] = (idx + 1) * lengths[i]
  used[i] = tonumber(redis.call('GET', wkeys[i]) or '0')
  if used[i] + cost > limits[i] then
    local wait = ends[i] - now_ms
    if wait > retry then
      denied = names[i]
      retry = wait
    end
  end
end

if denied == '' then
  tokens = tokens - need
  redis.call('HSET', KEYS[1], 't', tokens, 'ts', now_ms)
  redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
  for i = 1, 3 do
    used[i] = redis.call('INCRBY', wkeys[i], cost)
    if used[i] == cost then
      redis.call('PEXPIRE', wkeys[i], ends[i] - now_ms + 5000)
    end
  end
end

local gen = redis.call('GET', KEYS[5]) or '0'
-- Integers only: Lua numbers are doubles, and Redis truncates them on return.
return {denied, retry, now_ms, math.floor(tokens / MICRO), math.ceil((capacity - tokens) / rate),
        used[1], used[2], used[3], gen}
