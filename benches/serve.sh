#!/usr/bin/env bash
# The daemon's overhead (issue 10): a one-template change deployed by `tandem serve` on
# a signed GitHub-style webhook, against the same change run as `tandem apply` by hand,
# on the same hosts, as a ratio; and the time from sending the webhook to its 202.
#
#   N=50 REPS=3 benches/serve.sh        # defaults: N=10 tini hosts, 3 repetitions
#   PROFILE=release benches/serve.sh    # default: the debug build in target/debug
#
# What is measured, per repetition (wall time):
#   webhook -> 202        curl's total time for the POST to /hooks/github
#   webhook -> converged  from sending the webhook until the daemon's run is recorded
#                         finished (succeeded) and every host holds the new file
#   tandem apply          the same kind of change (a new commit of the template) applied
#                         by hand from a checkout: `tandem apply`, until every host holds
#                         the new file
# The site is one role writing one file per host; the fleet is tini hosts (no systemd).
# The git server is `git daemon` on 127.0.0.1; nothing but loopback and the fleet's own
# addresses is contacted. Needs root (scripts/fleet). KEEP=1 leaves the fleet up.
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
	TANDEM_SITE=$op "$TANDEM" runs --format json 2>/dev/null | jq '[.[] | select(.status == "succeeded")] | length' || echo 0
}
more_runs() { (($(runs_done) > $1)); }
hook() {
	local id=$1 body sig
	body=$(printf '{"ref":"refs/heads/master","pusher":{"name":"bench"},"n":"%s"}' "$id")
	sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
	curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST "http://127.0.0.1:$sport/hooks/github" \
		-H "X-GitHub-Event: push" -H "X-GitHub-Delivery: $id" -H "X-Hub-Signature-256: sha256=$sig" \
		-H 'Content-Type: application/json' --data-binary "$body"
}
wait_for() { # CONDITION... ; bounded at 120 s
	local deadline=$((SECONDS + 120))
	until "$@"; do ((SECONDS < deadline)) || die "timed out: $*"; sleep 0.05; done
}

say "first converge by webhook"
g commit -q --allow-empty -m first && g push -q origin master
read -r code _ < <(hook first)
[[ $code == 202 ]] || die "first webhook answered $code"
wait_for converged v0

printf '%-4s %12s %20s %14s %7s\n' rep "hook->202 s" "hook->converged s" "apply s" ratio
for rep in $(seq "$REPS"); do
	# The daemon: commit, push, webhook, wait.
	module "serve-$rep" >"$work/src/modules/web/module.toml"
	g commit -qam "serve $rep" && g push -q origin master
	before=$(runs_done)
	t0=$(now)
	read -r code t202 < <(hook "rep-$rep")
	[[ $code == 202 ]] || die "webhook answered $code"
	wait_for more_runs "$before"
	wait_for converged "serve-$rep"
	t1=$(now)
	daemon=$(elapsed "$t0" "$t1")
	# By hand: the same kind of change, applied from the work tree.
	module "hand-$rep" >"$work/src/modules/web/module.toml"
	g commit -qam "hand $rep"
	t0=$(now)
	TANDEM_SITE=$work/src "$TANDEM" apply >/dev/null 2>&1 || die "tandem apply failed"
	wait_for converged "hand-$rep"
	t1=$(now)
	hand=$(elapsed "$t0" "$t1")
	# Push the hand commit too, so the daemon's next head contains it (no rewind).
	g push -q origin master
	printf '%-4s %12.3f %20.3f %14.3f %7.2f\n' "$rep" "$t202" "$daemon" "$hand" "$(echo "$daemon / $hand" | bc -l)"
done
