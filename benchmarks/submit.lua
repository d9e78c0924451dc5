-- wrk script: POST a job per request, each with its own Idempotency-Key.
-- The token comes from the environment (ACCORD_TOKEN), the run tag from RUN_TAG.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("ACCORD_TOKEN")
  tag = os.getenv("RUN_TAG") or "run"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"command":["python","train.py","--seed=%d"],"gpus":%d,"time_limit":"2h","project":"bench"}',
    counter, 1 + counter % 4)
  return wrk.format("POST", "/api/v1/jobs", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%s-%d-%d", tag, tid, counter),
  }, body)
end

function response(status, headers, body)
  if status ~= 201 then
    print("unexpected status " .. status .. ": " .. body)
  end
end
