#!/usr/bin/env bash
# Proxy benchmark: roster's built-in proxy against nginx with a static
# upstream, both in front of the same backends, measured with wrk in the
# same run (one after the other, never at once). See README.md.
#   bench/proxy/run.sh                    # 10 s per measurement
#   DURATION=30 CONNECTIONS=128 bench/proxy/run.sh
# Needs: go, curl, wrk, nginx (Debian: apt-get install -y wrk nginx curl).
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BACKENDS=${BACKENDS:-4}
HTTP_PORT=${HTTP_PORT:-18500}
PROXY_PORT=${PROXY_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
BACKEND_BASE=${BACKEND_BASE:-19001}

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/roster-proxybench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for tool in go curl wrk nginx; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx curl)" >&2; exit 1; }
done
nginx_bin=$(command -v nginx)

echo "building roster and the backend" >&2
(cd "$root" && go build -o "$work/roster" ./cmd/roster && go build -o "$work/backend" ./bench/proxy/backend)

wait_http() { # URL [Host]
  for _ in $(seq 100); do
    curl -fsS -o /dev/null -H "Host: ${2:-localhost}" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

# Backends: one process, BACKENDS listeners (instances) on loopback.
addrs=()
for i in $(seq 0 $((BACKENDS - 1))); do addrs+=("127.0.0.1:$((BACKEND_BASE + i))"); done
"$work/backend" -listen "$(IFS=,; echo "${addrs[*]}")" >"$work/backend.log" 2>&1 &
pids+=($!)

# roster: an in-memory agent with the backends registered as service web,
# and `roster proxy` routing Host web to it.
"$work/roster" agent -dev -http-addr "127.0.0.1:$HTTP_PORT" -dns-addr off -log-level warn >"$work/agent.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$HTTP_PORT/readyz"
for i in "${!addrs[@]}"; do
  port=${addrs[$i]##*:}
  curl -fsS -X PUT "http://127.0.0.1:$HTTP_PORT/v1/services/web/instances/web-$i" \
    -d "{\"address\":\"127.0.0.1\",\"port\":$port}" >/dev/null
done
"$work/roster" proxy --listen "127.0.0.1:$PROXY_PORT" --http-addr "127.0.0.1:$HTTP_PORT" --log-level warn \
  >"$work/proxy.log" 2>&1 &
pids+=($!)
proxy_pid=$!
wait_http "http://127.0.0.1:$PROXY_PORT/" web

# nginx: the same backends as a static upstream with kept-alive
# connections, as an unprivileged process with its own prefix.
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
{
  echo "worker_processes auto;"
  echo "pid $work/nginx/nginx.pid;"
  echo "error_log $work/nginx/logs/error.log warn;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  echo "  access_log off;"
  for d in client_body proxy fastcgi uwsgi scgi; do echo "  ${d}_temp_path $work/nginx/tmp/$d;"; done
  echo "  upstream web {"
  for a in "${addrs[@]}"; do echo "    server $a;"; done
  echo "    keepalive 256;"
  echo "  }"
  echo "  server {"
  echo "    listen 127.0.0.1:$NGINX_PORT;"
  echo "    location / {"
  echo "      proxy_pass http://web;"
  echo "      proxy_http_version 1.1;"
  echo "      proxy_set_header Connection \"\";"
  echo "      proxy_set_header Host \$host;"
  echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
  echo "      proxy_set_header X-Forwarded-Host \$host;"
  echo "      proxy_set_header X-Forwarded-Proto \$scheme;"
  echo "    }"
  echo "  }"
  echo "}"
} >"$work/nginx/nginx.conf"
run_unprivileged=()
if [ "$(id -u)" = 0 ]; then
  chown -R nobody "$work/nginx"
  run_unprivileged=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
"${run_unprivileged[@]}" "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' \
  >"$work/nginx.out" 2>&1 &
pids+=($!)
nginx_pid=$!
wait_http "http://127.0.0.1:$NGINX_PORT/" web

cpu_ticks() { # PID and its children (nginx workers)
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat")))
  done
  echo "$total"
}

# measure NAME PORT PID: prints "rps p50_ms p99_ms cpu%".
measure() {
  local name=$1 port=$2 pid=$3 out="$work/$1.wrk" t0 t1 hz
  hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "$pid")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Host: web" "http://127.0.0.1:$port/" >"$out"
  t1=$(cpu_ticks "$pid")
  grep -q 'Non-2xx\|Socket errors' "$out" && { echo "$name: errors in the run:" >&2; cat "$out" >&2; }
  local rps p50 p99 cpu
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  # wrk prints latencies with a unit: us, ms or s.
  ms() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us$/, "", v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v*=1000}; printf "%.3f", v}' "$out"; }
  p50=$(ms 50%)
  p99=$(ms 99%)
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v d="$DURATION" 'BEGIN {printf "%.0f", (b-a)/hz/d*100}')
  echo "$rps $p50 $p99 $cpu"
}

echo "warm-up" >&2
DURATION=2 measure warm-roster "$PROXY_PORT" "$proxy_pid" >/dev/null
DURATION=2 measure warm-nginx "$NGINX_PORT" "$nginx_pid" >/dev/null
echo "roster proxy" >&2
read -r r_rps r_p50 r_p99 r_cpu <<<"$(measure roster "$PROXY_PORT" "$proxy_pid")"
echo "nginx" >&2
read -r n_rps n_p50 n_p99 n_cpu <<<"$(measure nginx "$NGINX_PORT" "$nginx_pid")"

ratio=$(awk -v r="$r_rps" -v n="$n_rps" 'BEGIN {printf "%.0f%%", r/n*100}')
p99ratio=$(awk -v r="$r_p99" -v n="$n_p99" 'BEGIN {printf "%.2f×", r/n}')
spread=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/v1/services/web/instances" | grep -o '"id":"web-[0-9]*"' | wc -l)
cat <<REPORT
### Proxy: roster vs nginx ($(date -u +%Y-%m-%dT%H:%M:%SZ))

- workload: GET / with \`Host: web\`, $BACKENDS backend instances ($spread registered) of \`bench/proxy/backend\`
  (one process, 64-byte answers) on loopback; wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), $THREADS threads,
  $CONNECTIONS connections, ${DURATION}s per run after a 2 s warm-up of each; closed loop, so p99 is at each proxy's maximum rate
- roster: \`roster proxy\` (default host routing, round robin, retries and outlier detection on), commit
  $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet HEAD -- . 2>/dev/null || echo ' (uncommitted changes)'), $(go version | awk '{print $3}');
  nginx: $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'), \`worker_processes auto\`, static upstream, \`keepalive 256\`, HTTP/1.1 to the
  backends, access log off, run as an unprivileged user
- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores shared by wrk, the proxy and the backends,
  kernel $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)

| measurement | roster | nginx | roster/nginx |
|---|--:|--:|--:|
| requests/s | $r_rps | $n_rps | $ratio |
| latency p50 (ms) | $r_p50 | $n_p50 | |
| latency p99 (ms) | $r_p99 | $n_p99 | $p99ratio |
| proxy CPU (% of one core) | $r_cpu | $n_cpu | |
REPORT
