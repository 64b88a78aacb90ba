-- wrk script for the showdown: POST /validate with one token, and count every response.
--
--   SHOWDOWN_TOKEN=<jwt> wrk -t2 -c16 -d10s -s bench/validate.lua http://127.0.0.1:PORT/validate
--
-- With SHOWDOWN_BEARER=1 it sends the token as a gateway's client would instead: GET with
-- `Authorization: Bearer <jwt>` to the URL's path (gateway mode: a proxy, or the validator's /auth).
--
-- With SHOWDOWN_DPOP_PROOFS=<file> (one DPoP proof a line, bench/dpop.js) it sends
-- POST /validate {"token", "dpop": <proof>, "method", "url"} (SHOWDOWN_DPOP_METHOD, SHOWDOWN_DPOP_URL),
-- a new proof per request: a proof is single-use. Thread i of SHOWDOWN_THREADS takes every line i
-- modulo the count; a thread that runs out sends "exhausted", which is refused and fails the run.
--
-- Each response is counted by status and by the `valid` field of its body ("200:true", "401:false",
-- ...), so the harness can fail a run where an invalid token was answered 200 (or anything other
-- than what was expected) instead of counting it as fast. `done` prints one line,
-- `SHOWDOWN_RESULT {...json...}`, with wrk's summary, latency percentiles (microseconds) and the
-- counts summed over all threads.

local token = os.getenv("SHOWDOWN_TOKEN")
if token == nil or token == "" then
  error("SHOWDOWN_TOKEN is not set")
end

if os.getenv("SHOWDOWN_BEARER") == "1" then
  wrk.method = "GET"
  wrk.headers["Authorization"] = "Bearer " .. token
else
  wrk.method = "POST"
  wrk.body = '{"token":"' .. token .. '"}'
  wrk.headers["Content-Type"] = "application/json"
end

-- main state: the threads, to read their counts in done()
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads - 1)
end

local proofs_file = os.getenv("SHOWDOWN_DPOP_PROOFS")
if proofs_file ~= nil and proofs_file ~= "" then
  local nthreads = tonumber(os.getenv("SHOWDOWN_THREADS") or "1")
  local method = os.getenv("SHOWDOWN_DPOP_METHOD")
  local url = os.getenv("SHOWDOWN_DPOP_URL")
  local proofs, next_proof = {}, 0

  -- thread state: this thread's share of the proofs (index is set by setup before init runs)
  function init(args)
    local i = 0
    for line in io.lines(proofs_file) do
      if i % nthreads == index then
        table.insert(proofs, line)
      end
      i = i + 1
    end
  end

  function request()
    next_proof = next_proof + 1
    local proof = proofs[next_proof] or "exhausted"
    local body = '{"token":"' .. token .. '","dpop":"' .. proof .. '","method":"' .. method ..
      '","url":"' .. url .. '"}'
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
  end
end

-- thread state: this thread's counts (a global, so that thread:get can read it)
counts = {}

function response(status, headers, body)
  local valid = "none"
  if body ~= nil then
    if string.find(body, '"valid":true', 1, true) then
      valid = "true"
    elseif string.find(body, '"valid":false', 1, true) then
      valid = "false"
    end
  end
  local key = tostring(status) .. ":" .. valid
  counts[key] = (counts[key] or 0) + 1
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    if c ~= nil then
      for k, v in pairs(c) do
        total[k] = (total[k] or 0) + v
      end
    end
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, json_string(k) .. ":" .. string.format("%d", v))
  end
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"max":%d,"mean":%.3f,"stdev":%.3f,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"counts":{%s}}',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ","))
  io.write("SHOWDOWN_RESULT " .. out .. "\n")
end
