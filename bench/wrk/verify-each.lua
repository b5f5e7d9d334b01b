-- wrk script that verifies every key of KEYS_FILE exactly once
-- (POST /v1/api-keys/verify, X-Api-Key), so each key lands in the server's
-- in-memory cache. Thread t of N takes lines t+1, t+1+N, …; after its share
-- it writes KEYS_FILE.done.<t> ("<ok> <bad>") and sends GET /healthz until
-- loadbench.py stops wrk.
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
local next_i, ok, bad, finished = 1, 0, 0, false

function init(args)
  local i = 0
  for line in io.lines(keys_file) do
    if i % nthreads == tid and #line > 0 then keys[#keys + 1] = line end
    i = i + 1
  end
  idle = wrk.format("GET", "/healthz")
end

function request()
  if next_i <= #keys then
    local k = keys[next_i]
    next_i = next_i + 1
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
  if ok + bad < #keys then
    if status == 200 and string.find(body, '"valid":true', 1, true) then
      ok = ok + 1
    elseif status == 200 and string.find(body, '"status"', 1, true) then
      -- a health check answered after the share was sent; not a verify
      return
    else
      bad = bad + 1
    end
    if ok + bad >= #keys then finish() end
  elseif #keys == 0 then
    finish()
  end
end
