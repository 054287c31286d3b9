-- POST /v1/checkouts with a fresh Idempotency-Key per request (two sellers, a test card).
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = (args[1] or "bench") .. "-" .. id .. "-"
  count = 0
  body = '{"buyer_id":"buyer-bench","currency":"EUR","payment_method":"pm_card_visa",' ..
         '"items":[{"seller_id":"seller-a","sku":"mug","quantity":2,"unit_amount":1250},' ..
         '{"seller_id":"seller-b","sku":"tea","quantity":1,"unit_amount":799}]}'
end

function request()
  count = count + 1
  local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. count}
  return wrk.format("POST", "/v1/checkouts", headers, body)
end

statuses = {}

function response(status, headers, body)
  if status > 399 then -- as wrk counts its non-2xx
    statuses[status] = (statuses[status] or 0) + 1
  end
end

local report = dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  report(summary, latency, requests, total)
end
