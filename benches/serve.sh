#!/usr/bin/env bash
# The daemon's overhead (issue 10) and its warm runs (issue 13): deploys by `tandem
# serve` on a signed GitHub-style webhook, over the connections the daemon keeps open
# between runs, against the same runs as `tandem apply` by hand (cold: fresh connections)
# and against the cold OpenSSH floor, on the same hosts, as ratios measured in one run.
#
#   N=50 REPS=3 benches/serve.sh        # defaults: N=10 tini hosts, 3 repetitions
#   PROFILE=release benches/serve.sh    # default: the debug build in target/debug
#
# What is measured, per repetition (wall time):
#   ssh floor            N parallel `ssh root@node sha256sum FILE`, fresh connections
#   warm no-op           webhook sent -> the daemon's run recorded succeeded (its
#                        finished_ms in the history), for a commit that changes nothing
#                        on the hosts (every node verified in sync)
#   cold no-op           `tandem apply` by hand of the same content, start to exit
#   warm change          webhook sent -> run recorded succeeded, for a one-template change
#                        (the apply verifies each file it wrote before it records success)
#   cold change          the same kind of change by `tandem apply` by hand
#   webhook -> 202       curl's total time for the POST to /hooks/github
# The hosts are checked after each timed step (every host holds what the step wrote),
# outside the timing. The figures also go to target/bench/serve.json (every sample,
# medians, ratios, the target "warm no-op within 0.5x the floor", the daemon's
# connection counts). The site is one role writing one file per host; the fleet is tini
# hosts (no systemd). The git server is `git daemon` on 127.0.0.1; nothing but loopback
# and the fleet's own addresses is contacted. Needs root (scripts/fleet). KEEP=1 leaves
# the fleet up.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
REPS=${REPS:-3}
PROFILE=${PROFILE:-debug}
TANDEM=$PWD/target/$PROFILE/tandem
FLEET=bench-serve-$$
SECRET="bench-webhook-secret-$$"

say() { printf '%s\n' "$*" >&2; }
die() {
	say "serve.sh: $*"
	[[ -f ${work:-}/serve.log ]] && tail -20 "$work/serve.log" >&2
	exit 1
}
[[ $(id -u) == 0 ]] || die "needs root (the fleet's namespaces)"
[[ -x $TANDEM ]] || die "no $TANDEM: cargo build${PROFILE/debug/} first"
export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL=http://127.0.0.1:9
now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

work=$(mktemp -d)
cleanup() {
	[[ -n ${serve_pid:-} ]] && kill "$serve_pid" 2>/dev/null || true
	[[ -n ${gitd_pid:-} ]] && kill "$gitd_pid" 2>/dev/null || true
	[[ ${KEEP:-0} == 1 ]] || scripts/fleet down "$FLEET" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

say "fleet: $N tini hosts"
scripts/fleet up "$FLEET" --layout "dc1:web:$N" --tini >/dev/null
dir=$(scripts/fleet dir "$FLEET")
mapfile -t hosts < <(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/inventory.toml")
export TANDEM_INVENTORY=$dir/inventory.toml TANDEM_KNOWN_HOSTS=$dir/known_hosts TANDEM_IDENTITY=$dir/id_ed25519

module() {
	printf '[[resource]]\ntype = "file"\npath = "/etc/bench-serve.conf"\ncontent = "%s\\n"\n' "$1"
}
g() { git -C "$work/src" -c user.name=bench -c user.email=bench@example.invalid -c commit.gpgsign=false "$@"; }
mkdir -p "$work/src/manifests/roles" "$work/src/modules/web"
printf '[site]\nname = "bench"\n\n[datacenters.dc1]\nprimary = true\nprovider = "static"\n' >"$work/src/manifests/site.toml"
printf 'modules = ["web"]\n' >"$work/src/manifests/roles/web.toml"
module v0 >"$work/src/modules/web/module.toml"
git init -q --bare -b master "$work/site.git"
g init -q -b master
g remote add origin "$work/site.git"
g add -A && g commit -qm v0 && g push -q origin master

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
git daemon --reuseaddr --export-all --listen=127.0.0.1 --port="$port" --base-path="$work" "$work" &
gitd_pid=$!
op=$work/operator
mkdir -p "$op/manifests"
printf '[repository]\nurl = "git://127.0.0.1:%s/site.git"\n\n[receivers.github]\nsecret_env = "BENCH_GITHUB_SECRET"\n' "$port" >"$op/manifests/serve.toml"
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BENCH_GITHUB_SECRET=$SECRET TANDEM_SITE=$op "$TANDEM" serve --listen "127.0.0.1:$sport" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$sport/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$sport/healthz" >/dev/null || die "tandem serve did not start: $(cat "$work/serve.log")"

# Every host holds `$1` in the managed file.
converged() {
	local host
	for host in "${hosts[@]}"; do
		[[ $(scripts/fleet exec "$FLEET" "$host" 'cat /etc/bench-serve.conf 2>/dev/null') == "$1" ]] || return 1
	done
}
runs_done() {
	curl -sf "http://127.0.0.1:$sport/runs.json?limit=1000" 2>/dev/null |
		jq '[.runs[] | select(.status == "succeeded")] | length' 2>/dev/null || echo 0
}
more_runs() { (($(runs_done) > $1)); }
# Prepares webhook `$1`: its body and signature (computed before any timing starts).
hook_prepare() {
	hook_body=$(printf '{"ref":"refs/heads/master","pusher":{"name":"bench"},"n":"%s"}' "$1")
	hook_sig=$(printf '%s' "$hook_body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
}
hook() {
	curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST "http://127.0.0.1:$sport/hooks/github" \
		-H "X-GitHub-Event: push" -H "X-GitHub-Delivery: $1" -H "X-Hub-Signature-256: sha256=$hook_sig" \
		-H 'Content-Type: application/json' --data-binary "$hook_body"
}
# When the newest succeeded run was recorded finished, in seconds since the epoch (the
# history's own clock, to the millisecond: no polling delay in the figure).
last_finished() {
	local ms
	ms=$(sqlite3 -readonly "$op/.tandem/history.sqlite" \
		"SELECT finished_ms FROM runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1")
	echo "$ms / 1000" | bc -l
}
wait_for() { # CONDITION... ; bounded at 120 s, polled every 10 ms
	local deadline=$((SECONDS + 120))
	until "$@"; do ((SECONDS < deadline)) || die "timed out: $*"; sleep 0.01; done
}
mapfile -t addrs < <(sed -n 's/^address = "\(.*\)"/\1/p' "$dir/inventory.toml")
((${#addrs[@]} == N)) || die "expected $N addresses in the inventory"
SSH_OPTS=(-F none -i "$dir/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
	-o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes
	-o KexAlgorithms=curve25519-sha256 -o ControlMaster=no -o ControlPath=none
	-o ConnectTimeout=10)
floor() {
	local pids=() addr failed=0
	for addr in "${addrs[@]}"; do
		ssh "${SSH_OPTS[@]}" "root@$addr" sha256sum /etc/bench-serve.conf >/dev/null &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	((failed == 0)) || die "the ssh floor failed on some host"
}
# Sends webhook `$1` and waits for one more succeeded run; prints "t202 seconds", the
# seconds from sending the webhook until the run was recorded succeeded.
by_webhook() {
	local before code t202 t0
	before=$(runs_done)
	hook_prepare "$1"
	t0=$(now)
	read -r code t202 < <(hook "$1")
	[[ $code == 202 ]] || die "webhook $1 answered $code"
	wait_for more_runs "$before"
	echo "$t202 $(elapsed "$t0" "$(last_finished)")"
}
by_hand() {
	local t0 t1
	t0=$(now)
	TANDEM_SITE=$work/src "$TANDEM" apply >/dev/null 2>&1 || die "tandem apply failed"
	t1=$(now)
	elapsed "$t0" "$t1"
}

say "first converge by webhook (the daemon opens its connections)"
g commit -q --allow-empty -m first && g push -q origin master
read -r _ _ < <(by_webhook first)
converged v0 || die "the first converge did not write v0 everywhere"

declare -A samples
add() { samples[$1]+="$2 "; }
printf '%-4s %9s %11s %11s %12s %12s %10s\n' rep "floor s" "warm no-op" "cold no-op" "warm change" "cold change" "hook->202"
content=v0
for rep in $(seq "$REPS"); do
	t0=$(now)
	floor
	floor_s=$(elapsed "$t0" "$(now)")
	# Warm no-op: a commit that changes nothing on the hosts.
	g commit -q --allow-empty -m "noop $rep" && g push -q origin master
	read -r t202 warm_noop < <(by_webhook "noop-$rep")
	converged "$content" || die "the no-op push changed a host"
	cold_noop=$(by_hand)
	converged "$content" || die "the no-op apply changed a host"
	# Warm change: one template, by the daemon.
	content="serve-$rep"
	module "$content" >"$work/src/modules/web/module.toml"
	g commit -qam "serve $rep" && g push -q origin master
	read -r _ warm_change < <(by_webhook "rep-$rep")
	converged "$content" || die "the daemon's run did not write $content everywhere"
	# Cold change: the same kind of change applied by hand from the work tree; pushed
	# afterwards so the daemon's next head contains it (no rewind).
	content="hand-$rep"
	module "$content" >"$work/src/modules/web/module.toml"
	g commit -qam "hand $rep"
	cold_change=$(by_hand)
	converged "$content" || die "tandem apply did not write $content everywhere"
	g push -q origin master
	add floor "$floor_s"; add warm_noop "$warm_noop"; add cold_noop "$cold_noop"
	add warm_change "$warm_change"; add cold_change "$cold_change"; add hook_202 "$t202"
	printf '%-4s %9.3f %11.3f %11.3f %12.3f %12.3f %10.3f\n' "$rep" "$floor_s" "$warm_noop" \
		"$cold_noop" "$warm_change" "$cold_change" "$t202"
done

connections=$(grep 'connections since start' "$work/serve.log" | tail -1 | sed 's/^serve: //')
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || commit="$commit-dirty"
args=()
for key in "${!samples[@]}"; do args+=("$key=${samples[$key]}"); done
mkdir -p target/bench
cp "$work/serve.log" target/bench/serve.log
python3 - "$N" "$REPS" "$PROFILE" "$commit" "$connections" "$(cut -d' ' -f1-3 /proc/loadavg)" "${args[@]}" <<'PY'
import datetime, json, statistics, sys
n, reps, profile, commit, connections, load, *rest = sys.argv[1:]
samples = {k: [float(x) for x in v.split()] for k, v in (a.split("=", 1) for a in rest)}
med = {k: statistics.median(v) for k, v in samples.items()}
ratios = {
    "warm_noop_x_floor": med["warm_noop"] / med["floor"],
    "warm_change_x_floor": med["warm_change"] / med["floor"],
    "cold_noop_x_floor": med["cold_noop"] / med["floor"],
    "cold_change_x_floor": med["cold_change"] / med["floor"],
    "warm_noop_x_cold_noop": med["warm_noop"] / med["cold_noop"],
    "warm_change_x_cold_change": med["warm_change"] / med["cold_change"],
}
target = {"warm_noop_x_floor": 0.5, "met": ratios["warm_noop_x_floor"] <= 0.5}
out = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "commit": commit, "hosts": int(n), "reps": int(reps), "profile": profile,
    "load_average": load, "samples_s": samples, "median_s": med, "ratios": ratios,
    "target": target, "daemon_connections": connections,
}
json.dump(out, open("target/bench/serve.json", "w"), indent=2)
print(f"\nmedians over {reps} reps on {n} tini hosts ({profile} build, commit {commit}, load {load}):")
for k in ("floor", "warm_noop", "cold_noop", "warm_change", "cold_change", "hook_202"):
    print(f"  {k:<12} {med[k]:8.3f} s")
for k, v in ratios.items():
    print(f"  {k:<26} {v:6.2f}")
verdict = "ok" if target["met"] else "MISS"
print(f"  target: warm no-op <= 0.5x the cold floor: {ratios['warm_noop_x_floor']:.2f}x {verdict}")
print(f"  daemon: {connections}")
print("  written to target/bench/serve.json")
PY
