#!/usr/bin/env bash
# DNS benchmark: roster against BIND9 serving an equivalent static zone,
# measured with dnsperf. See README.md. Run from anywhere:
#   bench/dns/run.sh            # 10 s per measurement
#   DURATION=30 bench/dns/run.sh
# Needs: go, curl, dnsperf and named (Debian: apt-get install -y dnsperf bind9).
set -euo pipefail

DURATION=${DURATION:-10}
HTTP_PORT=${HTTP_PORT:-18500}
ROSTER_PORT=${ROSTER_PORT:-18600}
BIND_PORT=${BIND_PORT:-18653}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/roster-dnsbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for tool in go curl dnsperf named; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y dnsperf bind9 curl)" >&2; exit 1; }
done

echo "building roster" >&2
(cd "$root" && go build -o "$work/roster" ./cmd/roster && go build -o "$work/visible" ./bench/dns/visible)

# roster: in-memory agent with a 5-instance service.
"$work/roster" agent -dev -http-addr "127.0.0.1:$HTTP_PORT" -dns-addr "127.0.0.1:$ROSTER_PORT" -xds-addr off \
  -log-level warn >"$work/roster.log" 2>&1 &
pids+=($!)
roster_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
for i in 1 2 3 4 5; do
  curl -fsS -X PUT "http://127.0.0.1:$HTTP_PORT/v1/services/web/instances/web-$i" \
    -d "{\"address\":\"10.0.0.$i\",\"port\":8080}" >/dev/null
done

# BIND9: the same answers from a static zone (SRV targets and their
# addresses under the same names roster uses).
mkdir -p "$work/bind"
{
  echo '$TTL 0'
  echo '@ IN SOA ns.roster. hostmaster.roster. 1 3600 600 86400 0'
  echo '@ IN NS ns.roster.'
  echo 'ns IN A 127.0.0.1'
  for i in 1 2 3 4 5; do
    echo "web.service IN A 10.0.0.$i"
    echo "web.service IN SRV 0 1 8080 0a00000$i.addr.roster."
    echo "0a00000$i.addr IN A 10.0.0.$i"
  done
} >"$work/bind/roster.zone"
cat >"$work/bind/named.conf" <<CONF
options {
  directory "$work/bind";
  pid-file "$work/bind/named.pid";
  listen-on port $BIND_PORT { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  minimal-responses no-auth;
  querylog no;
};
zone "roster." { type primary; file "$work/bind/roster.zone"; };
CONF
named -f -n 2 -c "$work/bind/named.conf" >"$work/bind.log" 2>&1 &
pids+=($!)
bind_pid=$!

printf 'web.service.roster. A\nweb.service.roster. SRV\n' >"$work/queries.txt"
for port in "$ROSTER_PORT" "$BIND_PORT"; do
  for _ in $(seq 100); do
    dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -n 1 >/dev/null 2>&1 && break
    sleep 0.1
  done
done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# measure NAME PORT PID [MAX_QPS]: prints "qps avg_ms lost cpu%"; with
# MAX_QPS, runs dnsperf -v and prints percentiles too.
measure() {
  local name=$1 port=$2 pid=$3 limit=${4:-}
  local args=(-s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$DURATION" -c "$CLIENTS" -T 2 -q "$OUTSTANDING")
  local out="$work/$name.out"
  local t0 t1 hz
  hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "$pid")
  if [ -n "$limit" ]; then
    dnsperf "${args[@]}" -Q "$limit" -v >"$out" 2>&1
  else
    dnsperf "${args[@]}" >"$out" 2>&1
  fi
  t1=$(cpu_ticks "$pid")
  local qps avg lost cpu
  qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$out")
  avg=$(awk '/Average Latency/ {printf "%.3f", $4*1000}' "$out")
  lost=$(awk '/Queries lost:/ {print $3}' "$out")
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v d="$DURATION" 'BEGIN {printf "%.0f", (b-a)/hz/d*100}')
  if [ -n "$limit" ]; then
    # dnsperf -v prints one line per answer ending in its latency (s).
    local pct
    pct=$(awk '$1 == ">" {print $NF}' "$out" | sort -g | awk '{v[NR]=$1} END {
      if (NR == 0) {print "- - -"; exit}
      printf "%.3f %.3f %.3f", v[int(NR*0.5)]*1000, v[int(NR*0.99)]*1000, v[int(NR*0.999)]*1000}')
    echo "$qps $avg $lost $cpu $pct"
  else
    echo "$qps $avg $lost $cpu"
  fi
}

echo "warm-up" >&2
DURATION=2 measure warm-roster "$ROSTER_PORT" "$roster_pid" >/dev/null
DURATION=2 measure warm-bind "$BIND_PORT" "$bind_pid" >/dev/null

echo "max throughput: roster" >&2
read -r r_qps r_avg r_lost r_cpu <<<"$(measure roster "$ROSTER_PORT" "$roster_pid")"
echo "max throughput: bind" >&2
read -r b_qps b_avg b_lost b_cpu <<<"$(measure bind "$BIND_PORT" "$bind_pid")"

# Latency at half of the target rate (80% of BIND's), the same for both.
rate=$(awk -v b="$b_qps" 'BEGIN {printf "%d", b*0.4}')
echo "latency at $rate/s: roster" >&2
read -r rl_qps rl_avg rl_lost rl_cpu rl_p50 rl_p99 rl_p999 <<<"$(measure roster-lat "$ROSTER_PORT" "$roster_pid" "$rate")"
echo "latency at $rate/s: bind" >&2
read -r bl_qps bl_avg bl_lost bl_cpu bl_p50 bl_p99 bl_p999 <<<"$(measure bind-lat "$BIND_PORT" "$bind_pid" "$rate")"

echo "registration to DNS visibility" >&2
visible=$("$work/visible" -http "127.0.0.1:$HTTP_PORT" -dns "127.0.0.1:$ROSTER_PORT" -rounds 200)

ratio=$(awk -v r="$r_qps" -v b="$b_qps" 'BEGIN {printf "%.0f%%", r/b*100}')
cat <<REPORT
### DNS: roster vs BIND9 ($(date -u +%Y-%m-%dT%H:%M:%SZ))

- workload: service \`web\` with 5 instances; queries alternate \`web.service.roster. A\` and \`SRV\` (50/50);
  dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}'), UDP, $CLIENTS clients, 2 threads, $OUTSTANDING outstanding, ${DURATION}s per run after a 2 s warm-up
- roster: \`roster agent -dev\`, commit $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet HEAD -- . 2>/dev/null || echo ' (uncommitted changes)'), TTL 0; BIND: $(named -v), \`named -n 2\`, static zone with the same A, SRV and target A records, \`recursion no\`, \`minimal-responses no-auth\`
- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)

| measurement | roster | BIND9 | roster/BIND |
|---|--:|--:|--:|
| max queries/s | $r_qps | $b_qps | $ratio |
| average latency at max (ms) | $r_avg | $b_avg | |
| queries lost at max | $r_lost | $b_lost | |
| server CPU at max (% of one core) | $r_cpu | $b_cpu | |
| latency at $rate/s: p50 (ms) | $rl_p50 | $bl_p50 | |
| latency at $rate/s: p99 (ms) | $rl_p99 | $bl_p99 | |
| latency at $rate/s: p99.9 (ms) | $rl_p999 | $bl_p999 | |
| queries/s achieved at $rate/s | $rl_qps | $bl_qps | |

Registration to DNS answer (\`bench/dns/visible\`: 200 rounds of PUT of a new service over HTTP,
then UDP queries until the answer holds it):

\`\`\`
$visible
\`\`\`
REPORT
