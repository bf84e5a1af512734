-- wrk script: POST request bodies read from a file, and the run's figures as one JSON line.
--
--   wrk -t1 -c32 -d15s -s bench/peers/post.lua URL -- BODIES_FILE [CONTENT_TYPE]
--
-- BODIES_FILE holds one request body per line (JSON has no raw newline); each connection
-- cycles through them, so the server parses different numbers, not one cached body. The
-- requests are formatted once in init(), so a request costs wrk no Lua work beyond picking one.
-- wrk does not read response bodies: the bench checks every server's answers with the Python
-- generator before each wrk run (run.py). At the end, done() prints one line starting with
-- "WRK_JSON " that run.py parses: requests, duration, errors and latency percentiles in us.

local requests = {}
local n = 0
local i = 0

function init(args)
  local path = args[1]
  local ctype = args[2] or "application/json"
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local headers = { ["Content-Type"] = ctype }
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      requests[n] = wrk.format("POST", nil, headers, line)
    end
  end
  f:close()
  assert(n > 0, "no request body in " .. path)
  i = math.random(n) - 1  -- threads start at different bodies
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return requests[i]
end

function done(summary, latency, requests_)
  local e = summary.errors
  local p = {}
  for _, q in ipairs({ 50, 90, 95, 99, 99.9 }) do
    p[#p + 1] = string.format('"p%s": %d', tostring(q):gsub("%.", "_"), latency:percentile(q))
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"mean_us": %.1f, "max_us": %d, %s}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.max, table.concat(p, ", ")))
end
