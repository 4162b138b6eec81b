-- Appended to every scenario script by the harness: print one JSON line with
-- wrk's totals, which the harness parses (wrk's own text summary is ignored).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'ZCBENCH {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p99":%d,"max":%d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
