-- Keep a scan's answer under its nonce unless one is there already, and queue the scan for the
-- database log only then (redis_store.RedisStore.record).
-- KEYS: the nonce's answer, the scan log
-- ARGV: the answer (redis_keys.nonce_value: fingerprint and JSON), the log record (JSON), the answer's time to live (seconds)
-- Returns the earlier answer when the nonce had one, else false.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return false
end
return redis.call('GET', KEYS[1])
