-- wrk script that creates API keys as fast as the server takes them:
-- POST /v1/api-keys {"userId": …} with an admin key, each returned key
-- appended to SEED_OUT.<thread>.txt (one per line). Each thread creates
-- its share of SEED_TOTAL keys (SEED_THREADS must equal wrk's -t), then
-- sends GET /healthz until loadbench.py sees every key written and stops wrk
-- (wrk cannot end a run early by itself).
--
-- Environment: SEED_USER, SEED_ADMIN, SEED_OUT, SEED_TOTAL, SEED_THREADS.

local user = os.getenv("SEED_USER")
local admin = os.getenv("SEED_ADMIN")
local out = os.getenv("SEED_OUT")
local total = tonumber(os.getenv("SEED_TOTAL"))
local nthreads = tonumber(os.getenv("SEED_THREADS"))
local per_thread

local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local create, idle, file
local sent, got, bad = 0, 0, 0

function init(args)
  per_thread = math.floor(total / nthreads) + ((tid < total % nthreads) and 1 or 0)
  create = wrk.format("POST", "/v1/api-keys", {
    ["Authorization"] = "Bearer " .. admin,
    ["Content-Type"] = "application/json",
  }, '{"userId":"' .. user .. '"}')
  idle = wrk.format("GET", "/healthz")
  file = io.open(out .. "." .. tid .. ".txt", "a")
  file:setvbuf("line")
end

function request()
  if sent < per_thread then
    sent = sent + 1
    return create
  end
  return idle
end

function response(status, headers, body)
  if got >= per_thread then return end
  local key = status == 201 and string.match(body, '"key":"(lk_[%w_]+)"')
  if key then
    got = got + 1
    file:write(key, "\n")
  elseif status ~= 200 or not string.find(body, '"status"', 1, true) then
    -- Not a created key and not the idle health check: count it, and write
    -- it to the error file so the driver can fail loudly.
    bad = bad + 1
    local err = io.open(out .. "." .. tid .. ".errors", "a")
    err:write(status, " ", string.sub(body, 1, 200), "\n")
    err:close()
  end
end
