-- wrk script of the login flood (bench/loadbench.py login-flood): every
-- request is a wrong password on one of many logins (FLOOD_LOGINS: a file
-- of "<login id> <login secret>" lines), so each costs the server one
-- Argon2id check. Counts answers by status; done() prints FLOOD_JSON.

local path = os.getenv("FLOOD_LOGINS")
local logins = {}
for line in io.lines(path) do
  local id, secret = line:match("(%S+) (%S+)")
  if id then table.insert(logins, { id = id, secret = secret }) end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local n = 0
function init(args)
  n = math.random(#logins)
end

function request()
  n = n % #logins + 1
  local l = logins[n]
  return wrk.format("POST", "/auth/logins/" .. l.id .. "/password", {
    ["Authorization"] = "Bearer " .. l.secret,
    ["Content-Type"] = "application/json",
  }, '{"password":"not the password, a flood"}')
end

s401, s403, s429, other = 0, 0, 0, 0
function response(status, headers, body)
  if status == 401 then s401 = s401 + 1
  elseif status == 403 then s403 = s403 + 1
  elseif status == 429 then s429 = s429 + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + (t:get("s401") or 0)
    b = b + (t:get("s403") or 0)
    c = c + (t:get("s429") or 0)
    d = d + (t:get("other") or 0)
  end
  io.write(string.format(
    'FLOOD_JSON {"requests":%d,"duration_us":%d,"s401":%d,"s403":%d,"s429":%d,"other":%d,' ..
    '"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, a, b, c, d, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
