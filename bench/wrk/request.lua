-- wrk script for every throughput case: one fixed request, every response
-- checked. Adapted from shared/bench/cc-token.lua (client_credentials with
-- HTTP Basic); the Basic header is computed by bench/loadbench.py.
--
-- Environment (all optional but WRK_EXPECT):
--   WRK_METHOD   GET or POST (default GET)
--   WRK_BODY     request body
--   WRK_CTYPE    Content-Type
--   WRK_AUTH     Authorization header value ("Basic …" or "Bearer …")
--   WRK_API_KEY  X-Api-Key header value
--   WRK_EXPECT   a substring every 200 body must contain (e.g. "valid":true):
--                a 200 that says {"valid":false} or {"active":false} is a
--                failed request too, a benchmark of refusals is meaningless.
--
-- done() prints one line "WRK_JSON {...}" with counts and latency
-- percentiles (microseconds), which loadbench.py parses.

local method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
local ctype = os.getenv("WRK_CTYPE")
local auth = os.getenv("WRK_AUTH")
local api_key = os.getenv("WRK_API_KEY")
local expect = os.getenv("WRK_EXPECT") or ""

wrk.method = method
if body and body ~= "" then wrk.body = body end
if ctype and ctype ~= "" then wrk.headers["Content-Type"] = ctype end
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
if api_key and api_key ~= "" then wrk.headers["X-Api-Key"] = api_key end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

-- Per thread (each thread has its own Lua state).
non200 = 0
badbody = 0
sample = ""

function response(status, headers, resp)
  if status ~= 200 then
    non200 = non200 + 1
    if sample == "" then sample = status .. " " .. string.sub(resp or "", 1, 200) end
  elseif expect ~= "" and not string.find(resp or "", expect, 1, true) then
    badbody = badbody + 1
    if sample == "" then sample = "200 " .. string.sub(resp or "", 1, 200) end
  end
end

local function jstr(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local n200, bad, smp = 0, 0, ""
  for _, t in ipairs(threads) do
    n200 = n200 + (t:get("non200") or 0)
    bad = bad + (t:get("badbody") or 0)
    local s = t:get("sample") or ""
    if smp == "" then smp = s end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"non200":%d,"bad_body":%d,"sample":%s,' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    n200, bad, jstr(smp),
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
