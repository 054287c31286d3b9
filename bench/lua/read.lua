-- GET /v1/payment-orders/{id}, cycling over the ids in the file named by the first argument.
function init(args)
  ids = {}
  for line in io.lines(args[1]) do
    table.insert(ids, line)
  end
  index = math.random(#ids)
end

function request()
  index = index % #ids + 1
  return wrk.format("GET", "/v1/payment-orders/" .. ids[index])
end

done = dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
