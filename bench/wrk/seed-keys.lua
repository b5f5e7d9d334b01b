-- wrk script that creates API keys as fast as the server takes them:
-- POST /v1/api-keys {"userId": …} with an admin key, every returned key
-- appended to SEED_OUT.<thread>.txt (one per line). A thread sends creates
-- until it has received its share of SEED_TOTAL keys (SEED_THREADS must
-- equal wrk's -t), then GET /healthz until loadbench.py sees enough keys and
-- stops wrk (wrk cannot end a run early by itself).
--
-- The share is counted in responses, not in request() calls: wrk calls
-- request() once on thread 0 only to inspect it, and never sends that one.
-- So up to one create per connection may be in flight when a thread has its
-- share: a few more keys than asked for exist in the store; loadbench.py
-- uses exactly SEED_TOTAL of the recorded ones.
--
-- Environment: SEED_USER, SEED_ADMIN, SEED_OUT, SEED_TOTAL, SEED_THREADS.

local user = os.getenv("SEED_USER")
local admin = os.getenv("SEED_ADMIN")
local out = os.getenv("SEED_OUT")
local total = tonumber(os.getenv("SEED_TOTAL"))
local nthreads = tonumber(os.getenv("SEED_THREADS"))

local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local create, idle, file, per_thread
local got = 0

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
  if got < per_thread then return create end
  return idle
end

function response(status, headers, body)
  local key = status == 201 and string.match(body, '"key":"(lk_[%w_]+)"')
  if key then
    got = got + 1
    file:write(key, "\n")
  elseif status ~= 200 or not string.find(body, '"status"', 1, true) then
    -- Neither a created key nor the idle health check: record it so the
    -- driver fails loudly.
    local err = io.open(out .. "." .. tid .. ".errors", "a")
    err:write(status, " ", string.sub(body, 1, 200), "\n")
    err:close()
  end
end
