-- wrk script of bench row 1: POST expenditure with a unique Idempotency-Key per request.
-- BENCH_TOKENS: file of "<CBS code> <token>" lines; BENCH_RUN: unique prefix of this run's keys.
local counter = 0
local tokens = {}
local codes = {}
local started = 0
function setup(thread)
  started = started + 1
  thread:set("tid", started)
end
function init(args)
  local f = assert(io.open(os.getenv("BENCH_TOKENS"), "r"))
  for line in f:lines() do
    local code, token = line:match("^(%S+)%s+(%S+)$")
    if code then
      table.insert(codes, code)
      table.insert(tokens, token)
    end
  end
  f:close()
end
request = function()
  counter = counter + 1
  local i = (counter % #codes) + 1
  local key = os.getenv("BENCH_RUN") .. "-" .. tid .. "-" .. counter
  local day = string.format("2024-%02d-%02d", (counter % 12) + 1, (counter % 28) + 1)
  local body = '{"grant_year":2024,"category":"promotion","amount_cents":' .. (1000 + counter % 90000) ..
    ',"booked_on":"' .. day .. '","counterparty":{"id":"PRINT-1","name":"Drukkerij (bench)"},' ..
    '"description":"bench expenditure","reference":"' .. key .. '"}'
  return wrk.format("POST", "/v1/municipalities/" .. codes[i] .. "/expenditures",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[i], ["Idempotency-Key"] = key},
    body)
end
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status_errors":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.timeout))
end
