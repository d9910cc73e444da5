-- A device's whole scan of an armed event in one Redis call, for the WSGI fast path
-- (fast_path.fast_scan): no Flask, one round trip. The same checks as scanning.evaluate with the
-- Redis store, in the same order, and the entry rule of rules.decide_entry (as in enter.lua);
-- tested against tests/cases/scan_rules.json.
-- KEYS: device, revoked devices, event, revoked tickets, ticket details, entries, log
-- ARGV: verdict, event id, ticket id, label, direction, scanned_at (iso Z), gate, now (iso Z),
--       gate's event id or '', scanned_at (log), recorded_at (log), nonce ttl, nonce, token hash,
--       the request's fingerprint (rules.fingerprint: 64 hex digits)
-- A nonce's value is the fingerprint of its first scan, then that scan's answer
-- (redis_keys.nonce_value). The nonce sent with another scan is left to the full path ('reused'),
-- which refuses it.
-- Replies: {'noauth'}, {'reused'}, {'old', first answer} or {'new', answer, its result, the
-- log record} (the record, as queued, is written to the database before the answer leaves).
local dev = redis.call('GET', KEYS[1])
if not dev or redis.call('SISMEMBER', KEYS[2], ARGV[14]) == 1 then return {'noauth'} end
local scanner = cjson.decode(dev)
local owner = scanner.device_id and ('d' .. scanner.device_id) or ('u' .. scanner.user_id)
local nonce = owner .. ':' .. ARGV[13]
local nonce_key = 'ck:n:' .. nonce
local prev = redis.call('GET', nonce_key)
if prev then
  if string.sub(prev, 1, 64) == ARGV[15] then return {'old', string.sub(prev, 65)} end
  return {'reused'}
end
local verdict, ev, ticket, label = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local direction, scanned_iso, gate, now = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local gate_event = tonumber(ARGV[9])
local member, gate_member, min_ev = false, false, nil
for _, id in ipairs(scanner.event_ids) do
  if id == ev then member = true end
  if gate_event and id == gate_event then gate_member = true end
  if min_ev == nil or id < min_ev then min_ev = id end
end
local answer = {}
local outcome_event, entry_state = nil, cjson.null
if verdict == 'malformed' then
  answer = {result = 'invalid', reason = 'malformed'}
elseif not member or (gate_event and gate_event ~= ev) then
  answer = {result = 'wrong_event'}
elseif verdict ~= 'ok' then
  answer = {result = 'invalid', reason = verdict}
else
  outcome_event = ev
  local result
  local info = redis.call('HMGET', KEYS[3], 'opens_at', 'closes_at', 'cancelled', 'allow_reentry')
  if info[3] == '1' or now < info[1] or now > info[2] then
    result = 'not_valid_now'
    answer.opens_at = info[1]; answer.closes_at = info[2]
  elseif redis.call('SISMEMBER', KEYS[4], ticket) == 1 then
    result = 'revoked'
  else
    local details = redis.call('HGET', KEYS[5], ticket)
    if details then for k, v in pairs(cjson.decode(details)) do answer[k] = v end end
    local cur = redis.call('HGET', KEYS[6], ticket)
    if cur then
      local state, at, last, first_gate = string.match(cur, '^(%a+)|([^|]*)|([^|]*)|(.*)$')
      if last == nonce then
        result = 'valid'
      elseif direction == 'in' then
        if state == 'out' and info[4] == '1' then
          redis.call('HSET', KEYS[6], ticket, 'in|' .. at .. '|' .. nonce .. '|' .. first_gate)
          result = 'valid'
        else
          result = 'already_used'; answer.first_scan = {at = at, gate = first_gate}
        end
      elseif state == 'in' then
        redis.call('HSET', KEYS[6], ticket, 'out|' .. at .. '|' .. nonce .. '|' .. first_gate)
        result = 'valid'
      else
        result = 'invalid'; answer.reason = 'not_checked_in'
      end
    elseif direction == 'in' then
      redis.call('HSET', KEYS[6], ticket, 'in|' .. scanned_iso .. '|' .. nonce .. '|' .. gate)
      result = 'valid'
    else
      result = 'invalid'; answer.reason = 'not_checked_in'
    end
    if result == 'valid' then entry_state = direction end
  end
  answer.result = result
  answer.ticket_id = ticket; answer.event_id = ev
  if answer.seat == nil then answer.seat = label end
end
local log_event = cjson.null
if gate_member then
  log_event = gate_event
elseif member then
  log_event = ev
elseif min_ev then
  log_event = min_ev
end
local log_ticket = cjson.null
if outcome_event and outcome_event == log_event then log_ticket = ticket end
local body = cjson.encode(answer)
redis.call('SET', nonce_key, ARGV[15] .. body, 'EX', ARGV[12])
local record = cjson.encode({
  event_id = log_event, ticket_id = log_ticket, gate = gate, direction = direction,
  result = answer.result, nonce = nonce, request_fingerprint = ARGV[15], scanned_at = ARGV[10], recorded_at = ARGV[11],
  device_id = scanner.device_id or cjson.null, user_id = scanner.user_id or cjson.null,
  offline = false, device_verdict = cjson.null, conflict = false, entry_state = entry_state})
redis.call('RPUSH', KEYS[7], record)
return {'new', body, answer.result, record}
