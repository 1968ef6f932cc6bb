-- The closed-loop HTTP load of `make bench`: POST /v1/transactions through wrk (Debian's `wrk`, LuaJIT).
--
-- Environment (set by bench/run.py):
--   API_KEY          the bearer key
--   SCENARIO         uniform | hot10 | hot1 | replay (uniform accounts, REPLAY_FRACTION repeats) |
--                    bulk (POST /v1/transactions/batch, BATCH_SIZE uniform transfers a request)
--   KEY_PREFIX       makes every Idempotency-Key of this run unique (per run and phase)
--   REPLAY_FRACTION  share of requests that repeat an earlier key with its exact body (replay only)
--   RESULT_FILE      where done() writes this run's counters as JSON
--
-- Each connection sends its next request when the previous one is answered (wrk's closed loop). Every request
-- but a replay carries a fresh Idempotency-Key; a replay repeats a key (and body) this thread already saw
-- answered 201. Every request carries a unique X-Request-Id, which the service echoes: that is how a response
-- is matched to its request, and how the requests still unanswered when wrk stops are known by key, so that
-- bench/run.py can count how many of them committed anyway (the exact acknowledged-vs-rows check).
-- (thread:get() of a table crashes Debian's wrk 4.1.0, so the unanswered sequence numbers are also kept in a
-- string, ",12,15,", which done() can read.)

local ACCOUNTS, HOT = 10000, 10
local api_key = os.getenv("API_KEY")
local scenario = os.getenv("SCENARIO") or "uniform"
local prefix = os.getenv("KEY_PREFIX") or "bench"
local replay_fraction = scenario == "replay" and tonumber(os.getenv("REPLAY_FRACTION") or "0.2") or 0
local result_file = os.getenv("RESULT_FILE")
local batch_size = scenario == "bulk" and tonumber(os.getenv("BATCH_SIZE") or "100") or 1
local path = scenario == "bulk" and "/v1/transactions/batch" or "/v1/transactions"

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

-- per thread (each has its own Lua state): tid is set by setup() above
sequence = 0
created_new, created_replay, answered_error, answered_503, replay_not_marked, unmatched = 0, 0, 0, 0, 0, 0
outstanding = {}   -- X-Request-Id -> {key, body, replay, sequence}
pending = ","      -- sequence numbers of the new (not replayed) requests not answered yet
recent = {}        -- answered 201, may be replayed: {key, body}

function init(args)
  math.randomseed(os.time() * 1000 + tid * 7919)
end

local function pick()
  local a, b
  if scenario == "hot10" then
    a, b = math.random(1, HOT), math.random(HOT + 1, ACCOUNTS)
  elseif scenario == "hot1" then
    a, b = 1, math.random(2, ACCOUNTS)
  else
    a, b = math.random(1, ACCOUNTS), math.random(1, ACCOUNTS - 1)
    if b >= a then b = b + 1 end
  end
  local amount = math.random(1, 1000)
  return string.format('{"postings":[{"account":"acct:%d","amount":-%d},{"account":"acct:%d","amount":%d}]}',
                       a, amount, b, amount)
end

local function make_body()
  if batch_size == 1 then return pick() end
  local transactions = {}
  for i = 1, batch_size do transactions[i] = pick() end
  return '{"transactions":[' .. table.concat(transactions, ",") .. ']}'
end

function request()
  sequence = sequence + 1
  local key, body, replay
  if replay_fraction > 0 and #recent > 0 and math.random() < replay_fraction then
    local earlier = recent[math.random(1, #recent)]
    key, body, replay = earlier[1], earlier[2], true
  else
    key, body, replay = string.format("%s-%d-%d", prefix, tid, sequence), make_body(), false
  end
  local rid = string.format("%s-%d-r%d", prefix, tid, sequence)
  outstanding[rid] = {key, body, replay, sequence}
  if not replay then pending = pending .. sequence .. "," end
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. api_key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
    ["X-Request-Id"] = rid,
  }, body)
end

function response(status, headers, body)
  local rid = headers["X-Request-Id"]
  local sent = rid and outstanding[rid]
  if not sent then
    unmatched = unmatched + 1
    return
  end
  outstanding[rid] = nil
  if not sent[3] then pending = string.gsub(pending, "," .. sent[4] .. ",", ",", 1) end
  if status == 201 then
    if headers["Idempotent-Replayed"] == "true" then
      created_replay = created_replay + 1
    else
      created_new = created_new + 1
      if sent[3] then replay_not_marked = replay_not_marked + 1 end
      if replay_fraction > 0 then
        table.insert(recent, {sent[1], sent[2]})
        if #recent > 100 then table.remove(recent, 1) end
      end
    end
  else
    answered_error = answered_error + 1
    if status == 503 then answered_503 = answered_503 + 1 end
  end
end

function done(summary, latency, requests)
  local totals = {created_new = 0, created_replay = 0, answered_error = 0, answered_503 = 0,
                  replay_not_marked = 0, unmatched = 0}
  local pending = {}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
    local tid = thread:get("tid")
    for number in string.gmatch(thread:get("pending") or "", "%d+") do
      table.insert(pending, string.format('"%s-%d-%s"', prefix, tid, number))
    end
  end
  local e = summary.errors
  local out = assert(io.open(result_file, "w"))
  out:write(string.format(
    '{"duration_us": %d, "requests": %d, "created_new": %d, "created_replay": %d, "answered_error": %d, ' ..
    '"answered_503": %d, "replay_not_marked": %d, "unmatched": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"batch_size": %d, "unanswered_keys": [%s]}',
    summary.duration, summary.requests, totals.created_new, totals.created_replay, totals.answered_error,
    totals.answered_503, totals.replay_not_marked, totals.unmatched, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, batch_size, table.concat(pending, ", ")))
  out:close()
end
