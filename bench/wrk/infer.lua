-- infer.lua - wrk script for `kiln serve`: POSTs one prepared request body over and
-- over, and prints one machine-readable RESULT line at the end.
--
--   wrk -t2 -c64 -d60s --latency -s bench/wrk/infer.lua URL -- BODY_FILE [HEADER_LEN]
--
-- BODY_FILE holds the whole request body.  With HEADER_LEN (the binary tensor
-- extension) the first HEADER_LEN bytes are the JSON header, the rest raw tensor
-- bytes, and the request carries Inference-Header-Content-Length; without it the
-- body is JSON.

local function read_file(path)
   local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
   local data = f:read("*a")
   f:close()
   return data
end

function init(args)
   wrk.method = "POST"
   wrk.body = read_file(args[1])
   if args[2] and args[2] ~= "" then
      wrk.headers["Content-Type"] = "application/octet-stream"
      wrk.headers["Inference-Header-Content-Length"] = args[2]
   else
      wrk.headers["Content-Type"] = "application/json"
   end
end

-- wrk counts HTTP statuses >= 400 in errors.status; nothing here answers 1xx/3xx,
-- so that is the non-2xx count.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
