#!/usr/bin/env bash
# The speed benchmark of SPEC section 12, on real SSH hosts: tandem against two floors
# measured on the same hosts in the same run, as ratios. Run as root on Debian:
#
#   benches/fleet.sh                 # 50 hosts, 5 repetitions, release build
#   N=20 REPS=3 PROFILE=debug benches/fleet.sh
#
# The figures also go to target/bench/fleet.json (per case: every wall time, median,
# ratio to each floor, tandem's peak RSS; the commit, date, hosts, build), and a copy to
# target/bench/history/, so the next run can be compared with this one; when a previous
# fleet.json exists its ratios are printed next to the new ones.
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
#   read floor      the reads a no-op of the role needs, by plain parallel OpenSSH (one
#                   fresh connection per node, one command line run by the login shell):
#                   `stat` of the role's paths, `sha256sum` of its 8 files, `dpkg-query`
#                   of nginx, one `systemctl show` of the 4 units, `getent passwd` and
#                   `getent group` of the 3 app accounts. What a hand-written check of
#                   the role reads; the no-op target stays against the ssh floor, this
#                   one shows what of the gap is the reads themselves.
#   change floors   the node work a change needs, by plain parallel OpenSSH (one fresh
#                   connection per node, one `sh -s` fed a script on stdin): the files
#                   written atomically with their owner and mode (temporary file, then
#                   `mv`), then the commands the change needs and nothing else.
#                   floor 8 files: the 8 managed files, `nginx -t -q`, `systemctl
#                   daemon-reload`, `systemctl restart` of each app (one command per
#                   app, as each is its own service), `systemctl reload nginx`.
#                   floor 2 nginx: the 2 nginx files, `nginx -t -q`, `systemctl reload
#                   nginx`. The content written is each node's own converged content,
#                   read from the node after the first apply, so the hosts stay in sync.
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
# Needs what scripts/fleet needs, plus cargo and /usr/bin/time. Connects only to the
# fleet's own addresses.
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
mkdir -p "$site/templates"
# git keeps no empty folder: on a fresh clone `templates/` may not exist.
for d in manifests modules templates; do
	[[ ! -d $d ]] || cp -a "$d" "$site"/
done
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

SSH_OPTS=(-F none -i "$dir/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
	-o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes
	-o KexAlgorithms=curve25519-sha256 -o ControlMaster=no -o ControlPath=none
	-o ConnectTimeout=10)

# The floor: every node checked by plain OpenSSH over fresh connections, in parallel.
floor() {
	local pids=() addr failed=0
	for addr in "${addrs[@]}"; do
		ssh "${SSH_OPTS[@]}" "root@$addr" sha256sum "$FILE" >/dev/null &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	((failed == 0)) || die "the ssh floor failed on some host"
}

# The read floor: the role's reads (see the header), one command line per node.
READS="stat -c '%n %a %U %G %s %F' -- /etc/dashboard /etc/txserver /etc/docs ${MANAGED[*]}"
READS+="; sha256sum -- ${MANAGED[*]}"
READS+="; dpkg-query -W -f='\${Package} \${db:Status-Abbrev} \${Version}\n' -- nginx"
READS+="; systemctl show --property=Id,ActiveState,UnitFileState -- nginx dashboard txserver docs"
READS+="; getent passwd -- dashboard txserver docs; getent group -- dashboard txserver docs"
read_floor() {
	local pids=() addr failed=0
	for addr in "${addrs[@]}"; do
		ssh "${SSH_OPTS[@]}" "root@$addr" "$READS" >/dev/null &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	((failed == 0)) || die "the read floor failed on some host"
}

# A change floor: every node fed its own script ($dir/floor/HOST.$1.sh) on stdin, by
# plain OpenSSH over fresh connections, in parallel.
change_floor() {
	local pids=() i failed=0
	for i in "${!addrs[@]}"; do
		ssh "${SSH_OPTS[@]}" "root@${addrs[$i]}" sh -s <"$dir/floor/${hosts[$i]}.$1.sh" >/dev/null &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
	((failed == 0)) || die "the $1 change floor failed on some host"
}

# Writes the change floors' scripts from each node's converged files (read through
# nsenter, not SSH): `changes` restores the 8 files, `nginx` the 2 nginx files.
write_change_floors() {
	mkdir -p "$dir/floor"
	local host
	for host in "${hosts[@]}"; do
		# shellcheck disable=SC2016 # expanded on the host
		scripts/fleet exec "$FLEET" "$host" sh -c '
			for f in "$@"; do
				printf "base64 -d > %s.floor <<\"B64\"\n" "$f"; base64 "$f"; printf "B64\n"
				printf "chown %s %s.floor && chmod %s %s.floor && mv -f %s.floor %s\n" \
					"$(stat -c %u:%g "$f")" "$f" "$(stat -c %a "$f")" "$f" "$f" "$f"
			done' sh "${MANAGED[@]}" >"$dir/floor/$host.files" ||
			die "cannot read the managed files of \`$host\`"
		{
			echo 'set -e'
			cat "$dir/floor/$host.files"
			echo 'nginx -t -q'
			echo 'systemctl daemon-reload'
			for app in dashboard txserver docs; do echo "systemctl restart $app"; done
			echo 'systemctl reload nginx'
		} >"$dir/floor/$host.changes.sh"
		{
			echo 'set -e'
			# The first two files are nginx's: up to the second file's `chown` line.
			awk -v n=2 '{ print } /^chown / { if (++seen == n) exit }' "$dir/floor/$host.files"
			echo 'nginx -t -q'
			echo 'systemctl reload nginx'
		} >"$dir/floor/$host.nginx.sh"
	done
}

# Runs "$@" and records its wall time in ms in the global `took`, and for tandem its
# peak RSS in KiB in `rss` and its user+system CPU in ms in `cpu` (0 otherwise); the
# exit status must be $1.
timed() {
	local want=$1 start status=0
	shift
	rss=0 cpu=0
	start=$(now_ms)
	if [[ $1 == "$tandem" ]]; then
		/usr/bin/time -f '%M %U %S' -o "$dir/last.rss" "$@" >"$dir/last.out" 2>"$dir/last.err" || status=$?
	else
		"$@" >"$dir/last.out" 2>"$dir/last.err" || status=$?
	fi
	took=$(($(now_ms) - start))
	((status == want)) || {
		tail -n 20 "$dir/last.out" "$dir/last.err" >&2
		die "\`$*\` exited $status, want $want"
	}
	if [[ $1 == "$tandem" ]]; then
		read -r rss cpu <<<"$(tail -n 1 "$dir/last.rss" | awk '{ printf "%d %d", $1, ($2 + $3) * 1000 }')"
	fi
}

# Waits (bounded) until every node's three apps listen: `systemctl restart` returns
# once an app is forked, and the stand-in apps (Python) starting in the background
# would otherwise take the CPU from whatever is measured next.
settle_apps() {
	on_all 'for i in $(seq 300); do
		n=$(ss -Hltn "( sport = :8081 or sport = :8082 or sport = :8083 )" | wc -l)
		[ "$n" -ge 3 ] && exit 0; sleep 0.1; done; echo "apps not listening" >&2; exit 1'
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

declare -A samples rsses cpus
record() {
	samples[$1]="${samples[$1]:-} $took"
	rsses[$1]="${rsses[$1]:-} $rss"
	cpus[$1]="${cpus[$1]:-} $cpu"
}

say "first converging apply on fresh hosts"
timed 0 "$tandem" apply --format json
outcomes_are changed
record converge
cp "$dir/last.out" "$dir/converge.json"
write_change_floors

noop_plan() { timed 0 "$tandem" plan && record plan; }
noop_apply() {
	timed 0 "$tandem" apply --format json && outcomes_are unchanged && record noop
	cp "$dir/last.out" "$dir/noop.json"
}
for rep in $(seq "$REPS"); do
	say "repetition $rep/$REPS"
	settle_apps
	timed 0 floor && record floor
	timed 0 read_floor && record floor_reads
	timed 0 "$tandem" check && record check
	# The no-op plan and apply take turns going first, so that neither always runs
	# right after the same thing.
	if ((rep % 2)); then noop_plan && noop_apply; else noop_apply && noop_plan; fi
	on_all "$(printf 'echo "# drift" >> %s && ' "${MANAGED[@]}") true"
	timed 0 "$tandem" apply --format json && outcomes_are changed && record changes
	cp "$dir/last.out" "$dir/changes.json"
	settle_apps
	# On converged hosts: the same files, the same content, the same restarts.
	timed 0 change_floor changes && record floor_changes
	settle_apps
	on_all "$(printf 'echo "# drift" >> %s && ' "${MANAGED[@]:0:2}") true"
	timed 0 "$tandem" apply --format json && outcomes_are changed && record nginx
	timed 0 change_floor nginx && record floor_nginx
done
# The floors wrote what tandem converged to: a no-op apply must still find every node
# in sync (else the floors did not do the same change).
timed 0 "$tandem" apply --format json
outcomes_are unchanged

say "counting connections and commands of one no-op and one 8-file apply on the hosts"
# sshd takes a keyword's first value: the fleet's own `LogLevel VERBOSE` goes first.
on_all "sed -i '/^LogLevel /d' /etc/ssh/sshd_config && echo 'LogLevel DEBUG1' >> /etc/ssh/sshd_config && systemctl reload ssh"
sleep 1
# Per host, what sshd logged since the mark: connections, exec requests, key exchanges.
count_since_mark() {
	local host
	for host in "${hosts[@]}"; do
		scripts/fleet exec "$FLEET" "$host" \
			'journalctl -q -u ssh -o cat | tail -n +$(($(cat /tmp/bench-journal-mark) + 1)) > /tmp/bench-journal-new;
			 echo $(grep -c "Accepted publickey" /tmp/bench-journal-new) $(grep -c "request exec" /tmp/bench-journal-new) $(grep -c "kex: algorithm: curve25519-sha256" /tmp/bench-journal-new)'
	done
}
on_all "journalctl -q -u ssh -o cat | wc -l > /tmp/bench-journal-mark"
timed 0 "$tandem" apply --format json
outcomes_are unchanged
cp "$dir/last.out" "$dir/counted.json"
sleep 1
mapfile -t counts < <(count_since_mark)
settle_apps
on_all "$(printf 'echo "# drift" >> %s && ' "${MANAGED[@]}") true"
on_all "journalctl -q -u ssh -o cat | wc -l > /tmp/bench-journal-mark"
timed 0 "$tandem" apply --format json
outcomes_are changed
cp "$dir/last.out" "$dir/counted-changes.json"
sleep 1
count_since_mark >"$dir/counts-changes"

load=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || commit="$commit-dirty"
args=()
for key in "${!samples[@]}"; do args+=("$key=${samples[$key]}|${rsses[$key]}|${cpus[$key]}"); done
mkdir -p target/bench/history
python3 - "$N" "$REPS" "$PROFILE" "$load" "$dir" "$commit" target/bench "${counts[@]}" -- "${args[@]}" <<'PY'
import datetime, json, os, shutil, statistics, sys
n, reps, profile, load, fleet_dir, commit, out_dir, *rest = sys.argv[1:]
sep = rest.index("--")
counts = [tuple(map(int, c.split())) for c in rest[:sep]]
samples, rss, cpu = {}, {}, {}
for arg in rest[sep + 1:]:
    key, value = arg.split("=", 1)
    ms, kb, cpu_ms = value.split("|")
    samples[key] = [int(v) for v in ms.split()]
    rss[key] = [int(v) for v in kb.split()]
    cpu[key] = [int(v) for v in cpu_ms.split()]
med = {k: statistics.median(v) for k, v in samples.items()}
# label, key, the second floor it is compared with (for a change, its change floor; for
# a no-op, the read floor), target against that floor (None: the target, if any, is
# against the ssh floor). In fleet.json that comparison is `x_change_floor` and the floor
# `change_floor`, the names earlier runs used.
rows = [
    ("ssh floor (parallel ssh + sha256sum)", "floor", None, None),
    ("read floor, the role's reads (ssh)", "floor_reads", None, None),
    ("change floor, 8 files (parallel ssh)", "floor_changes", None, None),
    ("change floor, 2 nginx (parallel ssh)", "floor_nginx", None, None),
    ("tandem check (compile + parity only)", "check", None, None),
    ("tandem plan, no-op", "plan", "floor_reads", None),
    ("tandem apply, no-op", "noop", "floor_reads", None),
    ("tandem apply, first converge (fresh)", "converge", None, None),
    ("tandem apply, 2 drifted nginx files", "nginx", "floor_nginx", 1.5),
    ("tandem apply, 8 drifted files/node", "changes", "floor_changes", 1.3),
]
targets_floor = {"plan": 1.0, "noop": 1.0}
prev_path = f"{out_dir}/fleet.json"
prev = None
if os.path.exists(prev_path):
    try:
        prev = json.load(open(prev_path))
    except ValueError:
        prev = None
cases = {}
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
print(f"\ntandem speed benchmark: {n} systemd hosts, {profile} build, commit {commit}, load average {load}")
if prev:
    print(f"previous run (x prev): {prev.get('date')} commit {prev.get('commit')}, {prev.get('hosts')} hosts, {prev.get('profile')} build")
print(f"{'measure':<38} {'runs':>4} {'best ms':>8} {'median ms':>10} {'x floor':>8} {'x 2nd flr':>9} {'target':>11} {'peak MiB':>9} {'cpu ms':>7} {'x prev':>7}")
for label, key, change, target in rows:
    if key not in samples:
        continue
    xs = samples[key]
    ratio = med[key] / med["floor"]
    x_change = med[key] / med[change] if change else None
    target_of, against = (target, x_change) if target else (targets_floor.get(key), ratio)
    verdict = "" if target_of is None else f"<{target_of}x " + ("ok" if against <= target_of else "MISS")
    peak = max(rss[key]) / 1024 if any(rss[key]) else None
    case = {
        "label": label,
        "samples_ms": xs,
        "best_ms": min(xs),
        "median_ms": med[key],
        "x_floor": round(ratio, 3),
        "x_change_floor": None if x_change is None else round(x_change, 3),
        "change_floor": change,
        "target": target_of,
        "peak_rss_kib": max(rss[key]) if any(rss[key]) else None,
        "cpu_ms": cpu[key] if any(cpu[key]) else None,
    }
    cases[key] = case
    prev_ratio = None
    if prev and key in prev.get("cases", {}):
        p = prev["cases"][key]
        prev_ratio = p.get("x_change_floor") if target else p.get("x_floor")
    now_ratio = x_change if target else ratio
    x_prev = "" if not prev_ratio else f"{now_ratio / prev_ratio:.2f}"
    print(f"{label:<38} {len(xs):>4} {min(xs):>8} {med[key]:>10.0f} {ratio:>8.2f} "
          f"{'' if x_change is None else f'{x_change:.2f}':>9} {verdict:>11} "
          f"{'' if peak is None else f'{peak:.0f}':>9} "
          f"{'' if not any(cpu[key]) else f'{statistics.median(cpu[key]):.0f}':>7} {x_prev:>7}")
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
changed_counts = [tuple(map(int, l.split())) for l in open(f"{fleet_dir}/counts-changes") if l.strip()]
changed_trips = [r["round_trips"] for r in json.load(open(f"{fleet_dir}/counted-changes.json"))["nodes"]]
print(f"per node, apply of 8 drifted files:")
print(f"  SSH connections: {span([c[0] for c in changed_counts])}, exec requests: {span([c[1] for c in changed_counts])}, round_trips: {span(changed_trips)}")
per_node = {}
for key in ("noop", "changes"):
    report = json.load(open(f"{fleet_dir}/{key}.json"))["nodes"]
    ms = sorted(r["elapsed_ms"] for r in report)
    per_node[key] = {"min_ms": ms[0], "median_ms": ms[len(ms) // 2], "max_ms": ms[-1]}
    print(f"  per-node elapsed, {key:<8} (last run): min {ms[0]} ms, median {ms[len(ms)//2]} ms, max {ms[-1]} ms")
doc = {
    "bench": "fleet",
    "date": now,
    "commit": commit,
    "hosts": int(n),
    "mode": "systemd",
    "reps": int(reps),
    "profile": profile,
    "load_average": load,
    "cases": cases,
    "no_op_apply_per_node": {
        "ssh_connections": span(conns),
        "exec_requests": span(execs),
        "round_trips": span(trips),
    },
    "changes_apply_per_node": {
        "ssh_connections": span([c[0] for c in changed_counts]),
        "exec_requests": span([c[1] for c in changed_counts]),
        "round_trips": span(changed_trips),
    },
    "per_node_elapsed_last_run": per_node,
}
with open(prev_path, "w") as f:
    json.dump(doc, f, indent=2)
shutil.copy(prev_path, f"{out_dir}/history/fleet-{now.replace(':', '')}-{commit}.json")
print(f"\nfigures written to {prev_path}")
PY
