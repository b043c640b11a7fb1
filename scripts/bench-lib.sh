# shellcheck shell=bash
# Shared by scripts/bench-serve.sh and scripts/bench-original.sh, so that both
# servers get exactly the same load and are measured the same way. Sourced.

# bench_payload WORK BIN RECORDS [SIGNAL=logs]: writes WORK/body.pb (a generated
# protobuf export of RECORDS log records or spans) and WORK/post.lua, the wrk
# script that POSTs it and prints one summary line.
bench_payload() {
  local work="$1" bin="$2" records="$3" signal="${4:-logs}"
  "$bin" generate --signal "$signal" --records "$records" --services 3 --out "$work/body.pb" 2>/dev/null
  cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-protobuf"
local f = io.open("$work/body.pb", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  io.write(string.format("ok_requests=%d errors=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests - summary.errors.status, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
}

# bench_watch_rss PID FILE: keeps FILE holding PID's peak RSS (KiB) while it runs.
bench_watch_rss() {
  local pid="$1" file="$2"
  ( while kill -0 "$pid" 2>/dev/null; do
      awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null > "$file.tmp" && mv "$file.tmp" "$file"
      sleep 1; done ) &
}

# bench_drive PORT DURATION CONNECTIONS WORK [SIGNAL=logs]: runs wrk against
# PORT/v1/SIGNAL, shows its report on stderr and prints the summary line.
bench_drive() {
  local port="$1" duration="$2" connections="$3" work="$4" signal="${5:-logs}"
  wrk -t2 -c"$connections" -d"${duration}s" -s "$work/post.lua" "http://127.0.0.1:$port/v1/$signal" \
    | tee /dev/stderr | grep ok_requests
}

# bench_ok_requests LINE: the acknowledged request count of a summary line.
bench_ok_requests() {
  # shellcheck disable=SC2001  # a regular expression, not a substitution
  echo "$1" | sed 's/.*ok_requests=\([0-9]*\).*/\1/'
}
