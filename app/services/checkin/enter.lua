-- The entry rule of rules.decide_entry, atomic in Redis (redis_store.RedisStore.enter); tested
-- against tests/cases/scan_rules.json.
-- KEYS: the event's entries (a hash of ticket id -> "<in|out>|<first time>|<last nonce>|<first gate>")
-- ARGV: ticket id, direction, time, gate, re-entry allowed ("1"/"0"), scoped nonce
-- The scan that made the last change answers "valid" again if it is retried while its first
-- answer is in flight.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local state, at, last, gate = string.match(cur, '^(%a+)|([^|]*)|([^|]*)|(.*)$')
  if last == ARGV[6] then
    return 'valid'
  end
  if ARGV[2] == 'in' then
    if state == 'out' and ARGV[5] == '1' then
      redis.call('HSET', KEYS[1], ARGV[1], 'in|' .. at .. '|' .. ARGV[6] .. '|' .. gate)
      return 'valid'
    end
    return 'already_used|' .. at .. '|' .. gate
  end
  if state == 'in' then
    redis.call('HSET', KEYS[1], ARGV[1], 'out|' .. at .. '|' .. ARGV[6] .. '|' .. gate)
    return 'valid'
  end
  return 'not_in'
end
if ARGV[2] == 'in' then
  redis.call('HSET', KEYS[1], ARGV[1], 'in|' .. ARGV[3] .. '|' .. ARGV[6] .. '|' .. ARGV[4])
  return 'valid'
end
return 'not_in'
