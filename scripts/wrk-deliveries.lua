-- wrk script for scripts/bench-webhooks: the same signed body with a new
-- X-Request-Id each time (the signature covers the body only, so every
-- request is a distinct, verified delivery, none a duplicate).
-- Environment: BODY_FILE, SIGNATURE, EVENT_KEY, RUN (a prefix unique to this run).
local threads = 0

function setup(thread)
  thread:set("thread", threads)
  threads = threads + 1
end

function init(args)
  local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Event-Key"] = os.getenv("EVENT_KEY")
  wrk.headers["X-Hub-Signature"] = os.getenv("SIGNATURE")
  prefix = os.getenv("RUN") .. "-" .. thread .. "-"
  sent = 0
end

function request()
  sent = sent + 1
  wrk.headers["X-Request-Id"] = prefix .. sent
  return wrk.format()
end
