#!/usr/bin/env bash
# The assets benchmark: davit's assets:sync against `aws s3 sync`,
# `s3cmd sync` and `rclone sync`, side by side on the same tree and the
# same S3 (gofakes3 in memory on 127.0.0.1, counting the requests it is
# sent), in three phases: the first sync into an empty bucket, a sync with
# nothing changed, and a sync after one file changed. Each tool has its own
# bucket. REPS (default 3) repetitions, each into fresh buckets; the table
# shows the medians. For each run: wall time, requests, the client's CPU (user+sys),
# and the ratio of its wall time to davit's; then the time of listing the
# bucket alone (the SDK paging ListObjectsV2), the floor of a no-change sync,
# measured in pairs with davit's no-change sync run right after it.
#
#   examples/assets-bench/run.sh [WORKDIR]
#
# Needs go, python3, /usr/bin/time and the Debian packages awscli, s3cmd
# and rclone (AWS=/path/to/aws overrides the aws used). The tree is a
# Rails-like public/: 10,000 small files (200 B-30 KB) in assets/, packs/
# and images/, and 20 downloads of 1-5 MB. Every tool sends public-read;
# rclone runs with --checksum --fast-list (size and MD5 from one recursive
# listing, as the others compare; its default reads each object's mtime
# with a HEAD).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-$(mktemp -d /tmp/assets-bench.XXXXXX)}
mkdir -p "$work/bin"
AWS=${AWS:-/usr/bin/aws}
for tool in "$AWS" s3cmd rclone python3 /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install awscli s3cmd rclone)" >&2; exit 1; }
done

echo "building davit and the helper ..." >&2
# Both static, as davit ships (no dynamic loader at start-up).
(cd "$root" && export CGO_ENABLED=0 && go build -o "$work/bin/davit" ./cmd/davit && go build -o "$work/bin/benchtool" ./examples/assets-bench/benchtool)
bt=$work/bin/benchtool

if [ ! -d "$work/public" ]; then
	echo "generating the tree ..." >&2
	"$bt" gen "$work/public"
fi

rm -f "$work/url"
reps=${REPS:-3}
buckets=$(for r in $(seq "$reps"); do printf 'davit-bench-%s,awscli-bench-%s,s3cmd-bench-%s,rclone-bench-%s,' "$r" "$r" "$r" "$r"; done)
"$bt" serve -buckets "${buckets%,}" -url-file "$work/url" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(cat "$work/url")
hostport=${url#http://}

# Credentials for the fake, and no configuration or metadata service that
# could supply others.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-credentials
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
# The fake speaks plain HTTP on loopback: a CA bundle from the environment
# means nothing to it (and rclone refuses to start with one).
unset AWS_CA_BUNDLE
# davit's hash cache, emptied before each first sync.
export XDG_CACHE_HOME=$work/cache
: >"$work/aws-config"
: >"$work/aws-credentials"

mkdir -p "$work/davit"
cat >"$work/davit/Deployfile" <<DF
use("assets")
set("assets_dir", "$work/public")
set("assets_bucket", "davit-bench-1")
DF

cat >"$work/s3cfg" <<CFG
[default]
access_key = bench
secret_key = bench-secret
host_base = $hostport
host_bucket = $hostport
use_https = False
signature_v2 = False
check_ssl_certificate = False
CFG

: >"$work/rclone.conf"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ENDPOINT=$url RCLONE_CONFIG_BENCH_REGION=us-east-1
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=bench RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=bench-secret
export RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true RCLONE_CONFIG_BENCH_ACL=public-read

# Each function syncs into the bucket of the repetition $rep.
sync_davit() { (cd "$work/davit" && AWS_ENDPOINT_URL=$url "$work/bin/davit" --format plain assets:sync assets_bucket="davit-bench-$rep" >"$work/davit.out"); }
sync_awscli() { "$AWS" s3 sync "$work/public" "s3://awscli-bench-$rep/" --endpoint-url "$url" --acl public-read --only-show-errors --no-progress; }
sync_s3cmd() { s3cmd -c "$work/s3cfg" sync --acl-public --no-progress --quiet "$work/public/" "s3://s3cmd-bench-$rep/"; }
sync_rclone() { rclone --config "$work/rclone.conf" sync "$work/public" "bench:rclone-bench-$rep" --checksum --fast-list -q; }
list_alone() { "$bt" list -endpoint "$url" -bucket "davit-bench-$rep" >/dev/null; }

export work url AWS bt rep
export -f sync_davit sync_awscli sync_s3cmd sync_rclone list_alone

count() { curl -s "$url/_bench/count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }

results=$work/results.tsv
printf 'phase\ttool\twall\tcpu\trequests\n' >"$results"

# measure PHASE TOOL FUNCTION: one run, timed, its requests counted.
measure() {
	count >/dev/null
	/usr/bin/time -f '%e %U %S' -o "$work/time" bash -c "$3" ||
		{ echo "run.sh: $2 failed in phase $1" >&2; exit 1; }
	read -r wall user sys <"$work/time"
	reqs=$(count)
	cpu=$(python3 -c "print(f'{$user+$sys:.2f}')")
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$wall" "$cpu" "$reqs" >>"$results"
	printf '%-10s %-7s wall %6ss  cpu %6ss  requests %6s\n' "$1" "$2" "$wall" "$cpu" "$reqs" >&2
}

tools="davit awscli s3cmd rclone"
# $reps repetitions, each into its own buckets; the table shows medians.
# Another machine's load moves single runs by a factor of two.
for rep in $(seq "$reps"); do
	echo "repetition $rep of $reps" >&2
	# davit's hash cache starts empty for each first sync.
	rm -rf "$XDG_CACHE_HOME"
	for phase in first no-change; do
		for t in $tools; do measure "$phase" "$t" "sync_$t"; done
	done
	# The floor and davit's no-change sync, in PAIRS (default 5) run back
	# to back, so that both see the same load on the machine and on the
	# server (a single run moves by a factor of two, and the tool that
	# runs just after another's 230 MB upload meets a busier server).
	for _ in $(seq "${PAIRS:-5}"); do
		measure listing list "list_alone"
		measure pair davit "sync_davit"
	done
	for t in $tools; do
		n=$("$bt" list -endpoint "$url" -bucket "$t-bench-$rep")
		[ "$n" = 10020 ] || { echo "run.sh: $t-bench-$rep holds $n objects, want 10020" >&2; exit 1; }
	done
	count >/dev/null
	# One changed file: new content and a new size (every tool's
	# comparison sees it); another file in each repetition.
	changed=$(find "$work/public/assets" -type f | sort | awk -v n="$rep" "NR == n")
	head -c $((4000 + rep)) /dev/urandom >"$changed"
	for t in $tools; do measure one-change "$t" "sync_$t"; done
done

python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(phase, tool, key):
    return statistics.median(float(r[key]) for r in rows if r["phase"] == phase and r["tool"] == tool)
def reqs(phase, tool):
    return int(statistics.median(int(r["requests"]) for r in rows if r["phase"] == phase and r["tool"] == tool))
reps = sum(1 for r in rows if r["phase"] == "first" and r["tool"] == "davit")
listing = med("listing", "list", "wall")
print("| phase | tool | wall (s) | requests | client CPU (s) | wall / davit's |")
print("|---|---|---:|---:|---:|---:|")
ok = True
for phase in ("first", "no-change", "one-change"):
    d = med(phase, "davit", "wall")
    for tool in ("davit", "awscli", "s3cmd", "rclone"):
        w = med(phase, tool, "wall")
        ratio = "1" if tool == "davit" else f"{w / d:.1f}x" if d > 0 else "-"
        if tool != "davit" and w <= d:
            ok = False
        name = {"davit": "davit assets:sync", "awscli": "aws s3 sync", "s3cmd": "s3cmd sync", "rclone": "rclone sync"}[tool]
        print(f"| {phase} | {name} | {w:.2f} | {reqs(phase, tool)} | {med(phase, tool, 'cpu'):.2f} | {ratio} |")
pair = med("pair", "davit", "wall")
pairs = sum(1 for r in rows if r["phase"] == "pair")
print(f"| listing alone | SDK ListObjectsV2, paged | {listing:.2f} | {reqs('listing', 'list')} | {med('listing', 'list', 'cpu'):.2f} | |")
print(f"| no-change, paired with the listing | davit assets:sync | {pair:.2f} | {reqs('pair', 'davit')} | {med('pair', 'davit', 'cpu'):.2f} | |")
print()
print(f"Medians of {reps} repetitions; the last two rows of {pairs} pairs, a listing and a no-change sync back to back.")
by_rep = []
pair_rows = [r for r in rows if r["phase"] in ("listing", "pair")]
for i in range(0, len(pair_rows) - 1, 2):
    by_rep.append(float(pair_rows[i + 1]["wall"]) / float(pair_rows[i]["wall"]))
per = max(1, pairs // max(reps, 1))
print("Pair ratios by repetition (median):", ", ".join(f"{statistics.median(by_rep[k:k + per]):.2f}x" for k in range(0, len(by_rep), per)))
print()
print(f"davit's no-change sync / listing alone: {pair / listing:.2f}x, from the pairs (target: within 1.5x)")
print("davit ahead of every tool in every phase:", "yes" if ok else "NO")
PY
