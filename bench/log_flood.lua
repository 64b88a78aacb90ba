-- wrk script for bench/log_flood.sh: POST /validate, alternating a valid token (FLOOD_VALID) and an
-- invalid one (FLOOD_INVALID), so half the requests are refusals that may each write a log line.
local bodies = {}
for i, name in ipairs({ "FLOOD_VALID", "FLOOD_INVALID" }) do
  local token = os.getenv(name)
  if token == nil or token == "" then
    error(name .. " is not set")
  end
  bodies[i] = '{"token":"' .. token .. '"}'
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[n % 2 + 1])
end
