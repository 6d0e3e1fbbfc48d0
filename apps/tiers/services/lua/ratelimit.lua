-- Token bucket plus minute/hour/day windows, decided and spent atomically in one round trip.
-- A port of apps/tiers/domain/ratelimit.py:decide; keep the two in step (shared tests run both).
-- One hash per customer holds everything (five commands per call, not twelve: Redis time is shared by
-- every web process): t, ts = bucket micro-tokens and time; m/mi, h/hi, d/di = each window's count and
-- the index of the window it counts.
-- KEYS: 1 the customer's hash, 2 auth generation
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

local s = redis.call('HMGET', KEYS[1], 't', 'ts', 'm', 'mi', 'h', 'hi', 'd', 'di')
local tokens = capacity
if s[1] then
  local elapsed = now_ms - tonumber(s[2])
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(capacity, tonumber(s[1]) + elapsed * rate)
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
local idx = {}
local used = {}
for i = 1, 3 do
  idx[i] = math.floor(now_ms / lengths[i])
  used[i] = 0
  if s[2 + 2 * i] and tonumber(s[2 + 2 * i]) == idx[i] then
    used[i] = tonumber(s[1 + 2 * i])
  end
  if used[i] + cost > limits[i] then
    local wait = (idx[i] + 1) * lengths[i] - now_ms
    if wait > retry then
      denied = names[i]
      retry = wait
    end
  end
end

if denied == '' then
  tokens = tokens - need
  for i = 1, 3 do used[i] = used[i] + cost end
  redis.call('HSET', KEYS[1], 't', tokens, 'ts', now_ms, 'm', used[1], 'mi', idx[1], 'h', used[2], 'hi', idx[2],
             'd', used[3], 'di', idx[3])
  -- Kept until the day window ends (the day count must survive that long): set when the hash is new
  -- or a new day begins, not on every call.
  if not s[8] or tonumber(s[8]) ~= idx[3] then
    redis.call('PEXPIRE', KEYS[1], (idx[3] + 1) * lengths[3] - now_ms + 5000)
  end
end

local gen = redis.call('GET', KEYS[2]) or '0'
-- Integers only: Lua numbers are doubles, and Redis truncates them on return.
return {denied, retry, now_ms, math.floor(tokens / MICRO), math.ceil((capacity - tokens) / rate),
        used[1], used[2], used[3], gen}
