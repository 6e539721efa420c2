#!/usr/bin/env bash
# Scale benchmark: one control node against fleets of 50 to 1,000 hosts, tandem against
# plain parallel OpenSSH at the same size, as ratios measured in one run. Run as root:
#
#   SIZES="50 200 500 1000" REPS=3 PROFILE=debug benches/scale.sh
#
# Per size, a fresh tini fleet (scripts/fleet; past 253 hosts it spans several /24s) and
# a files-only site: one directory, one file from a template naming the node, three
# files of shared content (1 KiB each). tandem runs with `--parallel SIZE` (every node at
# once, as the floor does), or `--parallel $PARALLEL` with the floor's OpenSSH processes
# limited to as many at once (PARALLEL=250 for 1,000 hosts on a small machine, where
# every node at once starves the hosts past the keepalive silence bound). Cases, each a
# wall time of the whole command:
#
#   floor          SIZE parallel `ssh ... sha256sum FILE`, fresh connections
#   change floor   SIZE parallel `ssh ... sh -s` writing one file atomically (temporary
#                  file, `mv`), fed on stdin: the node work of the one-file change
#   apply no-op    `tandem apply` on converged hosts
#   plan no-op     `tandem plan` on the same hosts (plan and apply take turns going
#                  first, so neither always runs after the same thing)
#   apply 1 file   `tandem apply` after one managed file was appended to on every node
#   first converge the first `tandem apply` on the fresh hosts
#
# For every tandem run: peak RSS and user+system CPU (/usr/bin/time) and the peak
# thread count (sampled from /proc every 20 ms while it runs). Figures go to
# target/bench/scale.json (and target/bench/history/). Each fleet is torn down before the
# next size starts and on exit. Connects only to the fleets' own addresses.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-50 200 500 1000}
REPS=${REPS:-3}
PROFILE=${PROFILE:-release}
FLEET=${FLEET:-scale}
FILE=/srv/scale/a.conf

say() { printf '%s\n' "scale: $*" >&2; }
die() {
	say "$*"
	exit 1
}
now_ms() { date +%s%3N; }

[[ $(id -u) == 0 ]] || die "needs root (the fleet's namespaces)"
say "build ($PROFILE)"
if [[ $PROFILE == release ]]; then
	cargo build --quiet --release --bin tandem
else
	cargo build --quiet --bin tandem
fi
tandem=$PWD/target/$PROFILE/tandem
trap 'scripts/fleet down "$FLEET" >/dev/null 2>&1 || true' EXIT

# The site: written once, outside any fleet.
work=$(mktemp -d /tmp/tandem-scale.XXXXXX)
trap 'scripts/fleet down "$FLEET" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
site=$work/site
mkdir -p "$site/manifests/roles" "$site/modules/files/templates" "$site/templates"
cat >"$site/manifests/site.toml" <<'TOML'
[site]
name = "scale"

[rollout]
canary = 0
batch = "100%"
max_failed = 100000
pause_seconds = 0

[datacenters.east]
primary = true
provider = "static"
TOML
echo 'modules = ["files"]' >"$site/manifests/roles/node.toml"
: >"$site/manifests/nodes.toml"
shared=$(for i in $(seq 32); do printf 'key_%02d = "a shared value, the same on every node"\n' "$i"; done)
{
	printf '[[resource]]\ntype = "directory"\npath = "/srv/scale"\nmode = "0755"\n\n'
	printf '[[resource]]\ntype = "file"\npath = "/srv/scale/node.conf"\ntemplate = "node.conf.hbs"\nmode = "0644"\n\n'
	for f in a b c; do
		printf '[[resource]]\ntype = "file"\npath = "/srv/scale/%s.conf"\nmode = "0644"\ncontent = """\n%s\n"""\n\n' "$f" "$shared"
	done
} >"$site/modules/files/module.toml"
printf 'name = "{{node.name}}"\naddress = "{{node.address}}"\n' >"$site/modules/files/templates/node.conf.hbs"
export TANDEM_SITE=$site
export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL=http://127.0.0.1:9
# The floor's OpenSSH gets ConnectTimeout=30; tandem the same bound per connection step
# (1,000 key exchanges at once on two shared cores take longer than the 10 s default).
export TANDEM_CONNECT_TIMEOUT=30s

declare -A samples rsses cpus threads
results=()

# Runs "$@" (exit status $1), records wall ms in `took`; for tandem also `rss` (KiB),
# `cpu` (ms) and `thr` (peak threads).
timed() {
	local want=$1 start status=0 tpid child t
	shift
	rss=0 cpu=0 thr=0
	start=$(now_ms)
	if [[ $1 == "$tandem" ]]; then
		/usr/bin/time -f '%M %U %S' -o "$dir/last.rss" "$@" >"$dir/last.out" 2>"$dir/last.err" &
		tpid=$!
		while [[ -e /proc/$tpid ]]; do
			child=$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null || true)
			if [[ -n $child ]]; then
				t=$(awk '/^Threads:/ { print $2 }' "/proc/${child%% *}/status" 2>/dev/null || echo 0)
				((${t:-0} > thr)) && thr=$t
			fi
			sleep 0.02
		done
		wait "$tpid" || status=$?
	else
		"$@" >"$dir/last.out" 2>"$dir/last.err" || status=$?
	fi
	took=$(($(now_ms) - start))
	((status == want)) || {
		# A JSON report: the outcomes and the first errors, not its tail.
		python3 - "$dir/last.out" >&2 <<-'PY' || tail -n 20 "$dir/last.out" >&2
			import collections, json, sys
			nodes = json.load(open(sys.argv[1]))["nodes"]
			print(dict(collections.Counter(n["outcome"] for n in nodes)))
			for error in sorted({n["error"] for n in nodes if n.get("error")})[:5]:
			    print("  ", error)
		PY
		tail -n 5 "$dir/last.err" >&2
		die "\`$*\` exited $status, want $want"
	}
	if [[ $1 == "$tandem" ]]; then
		read -r rss cpu <<<"$(tail -n 1 "$dir/last.rss" | awk '{ printf "%d %d", $1, ($2 + $3) * 1000 }')"
	fi
}

record() {
	local key=$n/$1
	samples[$key]="${samples[$key]:-} $took"
	rsses[$key]="${rsses[$key]:-} $rss"
	cpus[$key]="${cpus[$key]:-} $cpu"
	threads[$key]="${threads[$key]:-} $thr"
}

outcomes_are() {
	python3 - "$dir/last.out" "$1" <<-'PY'
		import collections, json, sys
		reports = json.load(open(sys.argv[1]))["nodes"]
		seen = collections.Counter(r["outcome"] for r in reports)
		if set(seen) != {sys.argv[2]}:
		    sys.exit(f"scale: want every node {sys.argv[2]}, got {dict(seen)}")
	PY
}

ssh_all() {
	local addr failed=0 running=0 limit=${PARALLEL:-${#addrs[@]}}
	for addr in "${addrs[@]}"; do
		if ((running >= limit)); then
			wait -n || failed=1
			((running--))
		fi
		ssh -F none -i "$dir/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
			-o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes \
			-o KexAlgorithms=curve25519-sha256 -o ControlMaster=no -o ControlPath=none \
			-o ConnectTimeout=30 "root@$addr" "$@" <"${FLOOR_STDIN:-/dev/null}" >/dev/null &
		((++running))
	done
	while ((running > 0)); do
		wait -n || failed=1
		((running--))
	done
	((failed == 0)) || die "the ssh floor failed on some host"
}
floor() { FLOOR_STDIN=/dev/null ssh_all sha256sum "$FILE"; }
change_floor() { FLOOR_STDIN=$work/change.sh ssh_all sh -s; }

# Appends a line to $FILE on every host (through nsenter, not SSH), 50 at a time.
drift() {
	local host k=0
	for host in "${hosts[@]}"; do
		scripts/fleet exec "$FLEET" "$host" "echo '# drift' >> $FILE" >/dev/null &
		((++k % 50)) || wait
	done
	wait
}

# Writes the figures of every size measured so far (after each size, so that a size
# that fails still leaves the ones before it).
report() {
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || commit="$commit-dirty"
	args=()
	for key in "${!samples[@]}"; do
		args+=("$key=${samples[$key]}|${rsses[$key]}|${cpus[$key]}|${threads[$key]}")
	done
	mkdir -p target/bench/history
	python3 - "$REPS" "$PROFILE" "$load" "$commit" target/bench "${args[@]}" <<-'PY'
	import datetime, json, shutil, statistics, sys
	reps, profile, load, commit, out_dir, *rest = sys.argv[1:]
	data = {}
	for arg in rest:
	    key, value = arg.split("=", 1)
	    size, case = key.split("/")
	    ms, kb, cpu, thr = (list(map(int, part.split())) for part in value.split("|"))
	    data.setdefault(int(size), {})[case] = (ms, kb, cpu, thr)
	now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
	rows = [
	    ("ssh floor (sha256sum)", "floor", None),
	    ("change floor (1 file, ssh)", "floor_change", None),
	    ("tandem apply, no-op", "noop", "floor"),
	    ("tandem plan, no-op", "plan", "floor"),
	    ("tandem apply, 1 file changed", "change", "floor_change"),
	    ("tandem apply, first converge", "converge", "floor"),
	]
	doc = {"bench": "scale", "date": now, "commit": commit, "profile": profile, "reps": int(reps),
	       "load_average": load, "mode": "tini", "sizes": {}}
	print(f"\ntandem scale benchmark: tini hosts, files-only site, {profile} build, commit {commit}, load average {load}")
	print(f"{'hosts':>5} {'measure':<30} {'median ms':>10} {'x floor':>8} {'peak MiB':>9} {'cpu ms':>7} {'threads':>8}")
	for size in sorted(data):
	    cases = data[size]
	    med = {k: statistics.median(v[0]) for k, v in cases.items()}
	    out = {}
	    for label, key, against in rows:
	        if key not in cases:
	            continue
	        ms, kb, cpu, thr = cases[key]
	        ratio = med[key] / med[against] if against else None
	        out[key] = {
	            "label": label, "samples_ms": ms, "median_ms": med[key],
	            "against": against, "x_floor": None if ratio is None else round(ratio, 3),
	            "peak_rss_kib": max(kb) or None, "cpu_ms": cpu if any(cpu) else None,
	            "peak_threads": max(thr) or None,
	        }
	        print(f"{size:>5} {label:<30} {med[key]:>10.0f} {'' if ratio is None else f'{ratio:.2f}':>8} "
	              f"{'' if not max(kb) else f'{max(kb) / 1024:.0f}':>9} "
	              f"{'' if not any(cpu) else f'{statistics.median(cpu):.0f}':>7} {max(thr) or '':>8}")
	    doc["sizes"][str(size)] = out
	path = f"{out_dir}/scale.json"
	with open(path, "w") as f:
	    json.dump(doc, f, indent=2)
	shutil.copy(path, f"{out_dir}/history/scale-{now.replace(':', '')}-{commit}.json")
	print(f"\nfigures written to {path}")
	PY
}

for n in $SIZES; do
	say "fleet: $n tini hosts"
	scripts/fleet up "$FLEET" --replace --tini --timeout 600 --layout "east:node:$n" >/dev/null
	dir=$(scripts/fleet dir "$FLEET")
	mapfile -t hosts < <(sed -n 's/^name = "\(.*\)"$/\1/p' "$dir/inventory.toml")
	mapfile -t addrs < <(sed -n 's/^address = "\(.*\)"$/\1/p' "$dir/inventory.toml")
	((${#hosts[@]} == n)) || die "inventory lists ${#hosts[@]} hosts, want $n"
	export TANDEM_INVENTORY=$dir/inventory.toml TANDEM_KNOWN_HOSTS=$dir/known_hosts TANDEM_IDENTITY=$dir/id_ed25519
	rm -rf "$site/.tandem"

	timed 0 "$tandem" apply --parallel "${PARALLEL:-$n}" --format json && outcomes_are changed && record converge
	# The one-file change floor: the converged file, written atomically.
	{
		echo 'set -e'
		printf 'base64 -d > %s.floor <<"B64"\n' "$FILE"
		scripts/fleet exec "$FLEET" "${hosts[0]}" "base64 $FILE"
		printf 'B64\nchmod 644 %s.floor && mv -f %s.floor %s\n' "$FILE" "$FILE" "$FILE"
	} >"$work/change.sh"
	for rep in $(seq "$REPS"); do
		say "$n hosts: repetition $rep/$REPS"
		timed 0 floor && record floor
		if ((rep % 2)); then
			timed 0 "$tandem" plan --parallel "${PARALLEL:-$n}" && record plan
			timed 0 "$tandem" apply --parallel "${PARALLEL:-$n}" --format json && outcomes_are unchanged && record noop
		else
			timed 0 "$tandem" apply --parallel "${PARALLEL:-$n}" --format json && outcomes_are unchanged && record noop
			timed 0 "$tandem" plan --parallel "${PARALLEL:-$n}" && record plan
		fi
		drift
		timed 0 "$tandem" apply --parallel "${PARALLEL:-$n}" --format json && outcomes_are changed && record change
		timed 0 change_floor && record floor_change
	done
	# The floor wrote what tandem converged to: still in sync.
	timed 0 "$tandem" apply --parallel "${PARALLEL:-$n}" --format json && outcomes_are unchanged
	results+=("$n")
	scripts/fleet down "$FLEET" >/dev/null
	report
done

