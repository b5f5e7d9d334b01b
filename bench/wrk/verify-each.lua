-- wrk script that verifies every key of KEYS_FILE at least once
-- (POST /v1/api-keys/verify, X-Api-Key), so each key lands in the server's
-- in-memory cache. Thread t of N takes lines t+1, t+1+N, … and sends them in
-- order, wrapping around, until it has received as many answers as it has
-- keys; then it writes KEYS_FILE.done.<t> ("<valid> <not valid>") and sends
-- GET /healthz until loadbench.py stops wrk.
--
-- Why wrap around: wrk calls request() once on thread 0 only to inspect it
-- and never sends that request, so thread 0's first key is sent again after
-- its last. The few extra verifications repeat keys already seen and add no
-- cache entry.
--
-- Environment: KEYS_FILE, VERIFY_ADMIN, VERIFY_THREADS.

local keys_file = os.getenv("KEYS_FILE")
local admin = os.getenv("VERIFY_ADMIN")
local nthreads = tonumber(os.getenv("VERIFY_THREADS"))

local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local keys = {}
local idle
local sent, ok, bad, finished = 0, 0, 0, false

function init(args)
  local i = 0
  for line in io.lines(keys_file) do
    if #line > 0 then
      if i % nthreads == tid then keys[#keys + 1] = line end
      i = i + 1
    end
  end
  idle = wrk.format("GET", "/healthz")
end

function request()
  if #keys > 0 and ok + bad < #keys then
    local k = keys[sent % #keys + 1]
    sent = sent + 1
    return wrk.format("POST", "/v1/api-keys/verify", {
      ["Authorization"] = "Bearer " .. admin,
      ["X-Api-Key"] = k,
    })
  end
  return idle
end

local function finish()
  if finished then return end
  finished = true
  local f = io.open(keys_file .. ".done." .. tid, "w")
  f:write(ok, " ", bad, "\n")
  f:close()
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"valid":true', 1, true) then
    ok = ok + 1
  elseif status == 200 and string.find(body, '"status"', 1, true) then
    -- the idle health check
  else
    bad = bad + 1
  end
  if ok + bad >= #keys then finish() end
end
