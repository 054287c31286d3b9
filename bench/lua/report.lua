-- wrk's done(): one JSON line with the figures the bench reads. `statuses`, when the script
-- counts them (checkout.lua), is what each status wrk counts as non-2xx (400 and up) came
-- to, over all threads.
return function(summary, latency, requests, statuses)
  local e = summary.errors
  local counted = {}
  for status, n in pairs(statuses or {}) do
    table.insert(counted, string.format('"%d":%d', status, n))
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,"statuses":{%s}}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, table.concat(counted, ",")))
end
