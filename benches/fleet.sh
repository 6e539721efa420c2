#!/usr/bin/env bash
# The speed benchmark of SPEC section 12, on real SSH hosts: tandem against the raw
# floor (plain parallel OpenSSH, fresh connections, `sha256sum` of one managed file), on
# the same hosts in the same run, as ratios. Run as root on Debian:
#
#   benches/fleet.sh                 # 50 hosts, 5 repetitions, release build
#   N=20 REPS=3 PROFILE=debug benches/fleet.sh
#
# What is measured: a local fleet (scripts/fleet) of N front-end hosts in systemd mode,
# half in azure-westus (primary), half in aws-useast1 (standby), running the example
# site's real `frontend` role unchanged: nginx (package, two validated config files,
# reloaded service) and three app services (group, user, config dir, config file, systemd
# unit, daemon-reload, service). systemd mode because the role's services are systemd
# units; the apps are the demo's stand-in binary (scripts/demo-standins/app), set through
# node variables exactly as scripts/demo does. Every figure is the wall time of the whole
# command as an operator types it (process start, site load, secrets, catalogs, SSH):
#
#   ssh floor       N parallel `ssh -o KexAlgorithms=curve25519-sha256 -o ControlMaster=no
#                   root@node sha256sum /etc/nginx/nginx.conf`, all fresh connections
#   check           `tandem check`: compile the N catalogs and check parity, no host touched
#   plan no-op      `tandem plan` on converged hosts (must exit 0)
#   apply no-op     `tandem apply` on converged hosts (every node `unchanged`)
#   first converge  the first `tandem apply` on the fresh hosts (one sample: hosts are
#                   fresh once)
#   apply nginx     `tandem apply` after a `# drift` line was appended to the two nginx
#                   files on every node (staged tree validated with `nginx -t`, reload)
#   apply changes   `tandem apply` after a `# drift` line was appended to each of the
#                   role's 8 managed files on every node (nginx validated and reloaded,
#                   daemon-reload, three app restarts per node)
#
# Connections and round trips of a no-op apply are counted on the hosts themselves: sshd
# is switched to LogLevel DEBUG1 for one extra no-op run, and its journal is counted
# ("Accepted publickey" per connection, "request exec" per command), next to the
# `round_trips` tandem reports per node in `--format json`.
#
# Needs what scripts/fleet needs, plus cargo. Connects only to the fleet's own addresses.
# The fleet is torn down on exit (KEEP=1 leaves it up).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-50}
REPS=${REPS:-5}
PROFILE=${PROFILE:-release}
FLEET=${FLEET:-bench}
FILE=/etc/nginx/nginx.conf
MANAGED=(/etc/nginx/nginx.conf /etc/nginx/conf.d/tandem-apps.conf)
for app in dashboard txserver docs; do
	MANAGED+=("/etc/$app/$app.toml" "/etc/systemd/system/$app.service")
done

say() { printf '%s\n' "bench: $*" >&2; }
die() {
	say "$*"
	exit 1
}
now_ms() { date +%s%3N; }

[[ $(id -u) == 0 ]] || die "needs root (the fleet's namespaces)"
((N >= 2 && REPS >= 1)) || die "N must be at least 2 and REPS at least 1"

say "build ($PROFILE)"
if [[ $PROFILE == release ]]; then
	cargo build --quiet --release --bin tandem
else
	cargo build --quiet --bin tandem
fi
tandem=$PWD/target/$PROFILE/tandem

# systemd takes several inotify instances per host (PID 1, journald...), all counted
# against root: the default limit of 128 stops a systemd fleet at about 25 hosts.
want_inotify=$((N * 8 + 128))
if (($(sysctl -n fs.inotify.max_user_instances) < want_inotify)); then
	say "raising fs.inotify.max_user_instances to $want_inotify (systemd hosts need it)"
	sysctl -q -w fs.inotify.max_user_instances=$want_inotify
fi

say "fleet: $N systemd front-end hosts"
scripts/fleet up "$FLEET" --replace --timeout 180 \
	--layout "azure-westus:frontend:$((N / 2)),aws-useast1:frontend:$((N - N / 2))" >/dev/null
[[ ${KEEP:-0} == 1 ]] || trap 'scripts/fleet down "$FLEET" >/dev/null 2>&1 || true' EXIT
dir=$(scripts/fleet dir "$FLEET")
mapfile -t hosts < <(sed -n 's/^name = "\(.*\)"$/\1/p' "$dir/inventory.toml")
mapfile -t addrs < <(sed -n 's/^address = "\(.*\)"$/\1/p' "$dir/inventory.toml")
((${#hosts[@]} == N && ${#addrs[@]} == N)) || die "inventory lists ${#hosts[@]} hosts, want $N"

# Runs a shell command on every host at once (through nsenter, not SSH: set-up and
# counting must not show up in the hosts' SSH logs as connections).
on_all() {
	local pids=() host failed=0
	for host in "${hosts[@]}"; do
		scripts/fleet exec "$FLEET" "$host" "$1" >/dev/null &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	((failed == 0)) || die "a host failed: $1"
}

# The demo's stand-in app, baked into every host as an image would carry it.
app=$(base64 -w0 scripts/demo-standins/app)
on_all "mkdir -p /opt/tandem-demo && echo $app | base64 -d > /opt/tandem-demo/app && chmod 755 /opt/tandem-demo/app"
awk '/^\[\[node\]\]/ && seen { print "[node.vars]\napp_command_override = \"/opt/tandem-demo/app\"\n" }
	/^\[\[node\]\]/ { seen = 1 } { print }
	END { print "[node.vars]\napp_command_override = \"/opt/tandem-demo/app\"" }' \
	"$dir/inventory.toml" >"$dir/bench-inventory.toml"

# The example site with its rollout policy flattened to one batch: the policy's canaries,
# pauses and health checks are a safety trade an operator chooses; this measures the
# engine against the floor. Same manifests and templates otherwise.
site=$dir/site   # removed with the fleet
mkdir -p "$site"
cp -a manifests modules templates "$site"/
python3 - "$site/manifests/site.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
start = re.search(r"(?m)^\[rollout\]", text).start()
end = re.search(r"(?m)^\[datacenters\.", text).start()
flat = '[rollout]\ncanary = 0\nbatch = "100%"\nmax_failed = 1000\npause_seconds = 0\n\n'
open(path, "w").write(text[:start] + flat + text[end:])
PY
export TANDEM_SITE=$site
export TANDEM_INVENTORY=$dir/bench-inventory.toml
export TANDEM_KNOWN_HOSTS=$dir/known_hosts
export TANDEM_IDENTITY=$dir/id_ed25519
export TANDEM_AGE_IDENTITY=$PWD/manifests/DEMO-ONLY-age-identity.txt

# The floor: every node checked by plain OpenSSH over fresh connections, in parallel.
floor() {
	local pids=() addr failed=0
	for addr in "${addrs[@]}"; do
		ssh -F none -i "$dir/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
			-o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes \
			-o KexAlgorithms=curve25519-sha256 -o ControlMaster=no -o ControlPath=none \
			-o ConnectTimeout=10 "root@$addr" sha256sum "$FILE" >/dev/null &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	((failed == 0)) || die "the ssh floor failed on some host"
}

# Runs "$@" and records its wall time in ms in the global `took`; the exit status must
# be $1.
timed() {
	local want=$1 start status=0
	shift
	start=$(now_ms)
	"$@" >"$dir/last.out" 2>"$dir/last.err" || status=$?
	took=$(($(now_ms) - start))
	((status == want)) || {
		tail -n 20 "$dir/last.out" "$dir/last.err" >&2
		die "\`$*\` exited $status, want $want"
	}
}

# All outcomes in the last JSON apply report must be $1.
outcomes_are() {
	python3 - "$dir/last.out" "$1" <<-'PY'
		import collections, json, sys
		reports = json.load(open(sys.argv[1]))["nodes"]
		seen = collections.Counter(r["outcome"] for r in reports)
		if set(seen) != {sys.argv[2]}:
		    sys.exit(f"bench: want every node {sys.argv[2]}, got {dict(seen)}")
	PY
}

declare -A samples
record() { samples[$1]="${samples[$1]:-} $2"; }

say "first converging apply on fresh hosts"
timed 0 "$tandem" apply --format json
outcomes_are changed
record converge "$took"
cp "$dir/last.out" "$dir/converge.json"

for rep in $(seq "$REPS"); do
	say "repetition $rep/$REPS"
	timed 0 floor && record floor "$took"
	timed 0 "$tandem" check && record check "$took"
	timed 0 "$tandem" plan && record plan "$took"
	timed 0 "$tandem" apply --format json && outcomes_are unchanged && record noop "$took"
	cp "$dir/last.out" "$dir/noop.json"
	on_all "$(printf 'echo "# drift" >> %s && ' "${MANAGED[@]}") true"
	timed 0 "$tandem" apply --format json && outcomes_are changed && record changes "$took"
	cp "$dir/last.out" "$dir/changes.json"
	on_all "$(printf 'echo "# drift" >> %s && ' "${MANAGED[@]:0:2}") true"
	timed 0 "$tandem" apply --format json && outcomes_are changed && record nginx "$took"
done

say "counting connections and commands of one no-op apply on the hosts"
on_all "echo 'LogLevel DEBUG1' >> /etc/ssh/sshd_config && systemctl reload ssh"
sleep 1
on_all "journalctl -q -u ssh -o cat | wc -l > /tmp/bench-journal-mark"
timed 0 "$tandem" apply --format json
outcomes_are unchanged
cp "$dir/last.out" "$dir/counted.json"
sleep 1
counts=()
for host in "${hosts[@]}"; do
	counts+=("$(scripts/fleet exec "$FLEET" "$host" \
		'journalctl -q -u ssh -o cat | tail -n +$(($(cat /tmp/bench-journal-mark) + 1)) > /tmp/bench-journal-new;
		 echo $(grep -c "Accepted publickey" /tmp/bench-journal-new) $(grep -c "request exec" /tmp/bench-journal-new) $(grep -c "kex: algorithm: curve25519-sha256" /tmp/bench-journal-new)')")
done

load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$N" "$REPS" "$PROFILE" "$load" "$dir" "${counts[@]}" -- \
	"floor=${samples[floor]}" "check=${samples[check]}" "plan=${samples[plan]}" \
	"noop=${samples[noop]}" "converge=${samples[converge]}" "changes=${samples[changes]}" \
	"nginx=${samples[nginx]}" <<'PY'
import json, statistics, sys
n, reps, profile, load, fleet_dir, *rest = sys.argv[1:]
sep = rest.index("--")
counts = [tuple(map(int, c.split())) for c in rest[:sep]]
samples = {k: [int(v) for v in vs.split()] for k, vs in (a.split("=", 1) for a in rest[sep + 1:])}
floor = statistics.median(samples["floor"])
rows = [
    ("ssh floor (parallel ssh + sha256sum)", "floor", None),
    ("tandem check (compile + parity only)", "check", None),
    ("tandem plan, no-op", "plan", None),
    ("tandem apply, no-op", "noop", 1.5),
    ("tandem apply, first converge (fresh)", "converge", None),
    ("tandem apply, 2 drifted nginx files", "nginx", 3.0),
    ("tandem apply, 8 drifted files/node", "changes", 3.0),
]
print(f"\ntandem speed benchmark: {n} systemd hosts, {profile} build, load average {load}")
print(f"{'measure':<38} {'runs':>4} {'best ms':>8} {'median ms':>10} {'x floor':>8} {'target':>7}")
for label, key, target in rows:
    xs = samples[key]
    med = statistics.median(xs)
    ratio = med / floor
    verdict = "" if target is None else (f"<{target}x " + ("ok" if ratio <= target else "MISS"))
    print(f"{label:<38} {len(xs):>4} {min(xs):>8} {med:>10.0f} {ratio:>8.2f} {verdict:>7}")
counted = json.load(open(f"{fleet_dir}/counted.json"))["nodes"]
trips = [r["round_trips"] for r in counted]
conns = [c[0] for c in counts]
execs = [c[1] for c in counts]
kexes = [c[2] for c in counts]
def span(xs): return f"{min(xs)}" if min(xs) == max(xs) else f"{min(xs)}-{max(xs)}"
print(f"\nper node, no-op apply (target: 1 connection, at most 2 round trips):")
print(f"  SSH connections (sshd 'Accepted publickey'): {span(conns)}")
print(f"  exec requests   (sshd 'request exec'):       {span(execs)}")
print(f"  round_trips     (tandem --format json):      {span(trips)}")
print(f"  curve25519 kex  (sshd 'kex: algorithm'):     {span(kexes)}")
for key in ("noop", "changes"):
    report = json.load(open(f"{fleet_dir}/{'noop' if key == 'noop' else 'changes'}.json"))["nodes"]
    ms = sorted(r["elapsed_ms"] for r in report)
    print(f"  per-node elapsed, {key:<8} (last run): min {ms[0]} ms, median {ms[len(ms)//2]} ms, max {ms[-1]} ms")
PY
