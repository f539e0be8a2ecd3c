#!/usr/bin/env bash
# A real single-node OpenSearch built from Maven Central artifacts (no Docker, no tarball download).
#
#   localstack/opensearch.sh install   fetch (mvn, cache ~/.m2) and assemble the node; idempotent
#   localstack/opensearch.sh start     install if needed, start on 127.0.0.1:${OPENSEARCH_PORT:-9200}, wait for yellow
#   localstack/opensearch.sh stop      stop the node started by this script (by pid file only)
#   localstack/opensearch.sh status    print state; exit 0 when running and healthy, 3 when stopped
#   localstack/opensearch.sh bench     cold install+start and warm start timings -> bench/results/opensearch-start.json
#
# What is assembled (see localstack/opensearch/pom.xml):
#   org.opensearch.distribution.integ-test-zip:opensearch:$V:zip      (ships only modules/transport-netty4)
#   modules/lang-painless, modules/analysis-common                     hand-built from the Maven jars
#   org.opensearch.plugin:opensearch-knn:$V.0:zip                      via bin/opensearch-plugin install --batch
#                                                                      (no native libs: use engine "lucene" only)
#
# Environment:
#   SIEVE_HOME               default $HOME/.sieve; the node lives in $SIEVE_HOME/opensearch/$V
#   OPENSEARCH_VERSION       default 2.19.1 (the only 2.19.x for which Maven Central serves a matching k-NN zip)
#   OPENSEARCH_PORT          HTTP port, default 9200 (bound to 127.0.0.1 only)
#   OPENSEARCH_HEAP          default 1g
#   OPENSEARCH_START_TIMEOUT seconds to wait for green/yellow, default 180
#   OPENSEARCH_JAVA_HOME     JDK to run the node with (2.19.x: 11..21; default: Debian's openjdk-17)
#   OPENSEARCH_USER          user the node runs as when invoked as root (default sieve-os; created if missing)
#   OPENSEARCH_OPTIONAL_PLUGINS  plugins installed besides k-NN, default "job-scheduler ml-plugin" (ml-commons,
#                            which needs job-scheduler; its zip is ~360 MB). Set it to "" for a lean node. Also
#                            accepted: neural-search (Maven Central serves no 2.19.1.0 zip: reported and skipped).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/opensearch/pom.xml"

V="${OPENSEARCH_VERSION:-2.19.1}"
KNN_V="${V}.0"
SIEVE_HOME="${SIEVE_HOME:-$HOME/.sieve}"
OS_ROOT="$SIEVE_HOME/opensearch/$V"
OS_HOME="$OS_ROOT/opensearch-$V"
DATA_DIR="$OS_ROOT/data"
LOG_DIR="$OS_ROOT/logs"
RUN_DIR="$OS_ROOT/run"
PID_FILE="$RUN_DIR/opensearch.pid"
MARKER="$OS_ROOT/.installed"
PORT_FILE="$RUN_DIR/http.port"
PORT_REQUESTED="${OPENSEARCH_PORT:-}"
PORT="${OPENSEARCH_PORT:-9200}"
HEAP="${OPENSEARCH_HEAP:-1g}"
START_TIMEOUT="${OPENSEARCH_START_TIMEOUT:-180}"
CLUSTER_NAME="sieve-local"
OS_USER="${OPENSEARCH_USER:-sieve-os}"
# Bump when the assembly recipe changes, so an old install is rebuilt rather than trusted.
OPTIONAL_PLUGINS="${OPENSEARCH_OPTIONAL_PLUGINS-job-scheduler ml-plugin}"
RECIPE="v3 os=$V knn=$KNN_V modules=lang-painless,analysis-common optional=$OPTIONAL_PLUGINS"

log() { printf '[opensearch] %s\n' "$*" >&2; }
die() { printf '[opensearch] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------------- java
java_major() { # $1 = JAVA_HOME
  "$1/bin/java" -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

pick_java() {
  local min max cand
  case "$V" in
    2.*) min=11; max=23 ;;  # 2.x installs a Security Manager: impossible on JDK 24+
    *)   min=21; max=99 ;;
  esac
  for cand in "${OPENSEARCH_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-21-openjdk-amd64 \
              "${JAVA_HOME:-}" /usr/lib/jvm/temurin-21-jdk-amd64 /usr/lib/jvm/temurin-25-jdk-amd64 \
              "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")"; do
    [ -n "$cand" ] && [ -x "$cand/bin/java" ] || continue
    local m; m="$(java_major "$cand")"
    if [ -n "$m" ] && [ "$m" -ge "$min" ] && [ "$m" -le "$max" ]; then echo "$cand"; return 0; fi
  done
  die "no JDK between $min and $max found for OpenSearch $V (set OPENSEARCH_JAVA_HOME)"
}

# ---------------------------------------------------------------------------------------------- user
# OpenSearch refuses to run as root ("can not run opensearch as root"): when we are root, run it as $OS_USER.
run_as_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$OS_USER" -- "$@"
  else
    "$@"
  fi
}

ensure_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! id -u "$OS_USER" >/dev/null 2>&1; then
    log "creating system user $OS_USER"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OS_USER"
  fi
  # The user must be able to traverse every ancestor of $OS_ROOT (e.g. /root is 0700). Grant search (x) only.
  local d="$OS_ROOT"
  while [ "$d" != "/" ]; do
    d="$(dirname "$d")"
    if [ -d "$d" ] && ! runuser -u "$OS_USER" -- test -x "$d"; then
      log "granting traverse-only permission (o+x) on $d so that $OS_USER can reach $OS_ROOT"
      chmod o+x "$d"
    fi
  done
}

own_tree() { # give the run user the node's files
  [ "$(id -u)" -eq 0 ] || return 0
  chown -R "$OS_USER:" "$OS_ROOT"
}

# ---------------------------------------------------------------------------------------------- maven
mvn_copy() { # $1 = profile, $2 = output dir, $3 = "quiet" to print only the reason on failure
  mkdir -p "$2"
  if ! mvn -B -q -f "$POM" -P "$1" -Dopensearch.version="$V" -Dknn.version="$KNN_V" \
        dependency:copy-dependencies -DoutputDirectory="$2" >"$2.mvn.log" 2>&1; then
    if [ "${3:-}" = quiet ]; then
      grep -m1 -o 'Could not \(find\|resolve\|transfer\)[^:]*: [^ ]*' "$2.mvn.log" | sed 's/^/[opensearch]   mvn: /' >&2 || true
    else
      cat "$2.mvn.log" >&2
    fi
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------- modules
# A module is a directory with jars + plugin-descriptor.properties (+ plugin-security.policy when it needs
# permissions). Maven publishes the module jars but not the descriptor; we generate it from the jar.
write_descriptor() { # $1 dir, $2 name, $3 classname, $4 extended plugins, $5 description
  cat >"$1/plugin-descriptor.properties" <<EOF
# Generated by localstack/opensearch.sh from the Maven Central jars of $2 $V
description=$5
version=$V
name=$2
classname=$3
java.version=11
opensearch.version=$V
custom.foldername=
extended.plugins=$4
has.native.controller=false
EOF
}

find_plugin_class() { # $1 jar, $2.. candidate class names: print the first one the jar contains
  local jar="$1"; shift
  local listing; listing="$(unzip -Z1 "$jar")"
  local c
  for c in "$@"; do
    if grep -qx "${c//.//}.class" <<<"$listing"; then echo "$c"; return 0; fi
  done
  die "none of [$*] found in $jar"
}

drop_jars_in_lib() { # $1 module dir: remove any jar whose artifact is already in lib/ (jar hell)
  local j base art
  for j in "$1"/*.jar; do
    base="$(basename "$j")"
    art="${base%-[0-9]*}"  # artifactId without -<version>.jar
    if compgen -G "$OS_HOME/lib/${art}-[0-9]*.jar" >/dev/null; then
      log "  not copying $base into $(basename "$1"): lib/ has ${art}"
      rm -f "$j"
    fi
  done
}

build_module() { # $1 name (maven profile), $2 classname candidates (space separated), $3 extended, $4 description
  local name="$1" dir="$OS_HOME/modules/$1" tmp="$OS_ROOT/.build/$1"
  rm -rf "$dir" "$tmp"
  mvn_copy "$name" "$tmp" || die "mvn could not fetch the jars of module $name $V"
  mkdir -p "$dir"
  cp "$tmp"/*.jar "$dir/"
  drop_jars_in_lib "$dir"
  # shellcheck disable=SC2086
  local cls; cls="$(find_plugin_class "$dir/$name-$V.jar" $2)"
  write_descriptor "$dir" "$name" "$cls" "$3" "$4"
  log "  module $name: classname=$cls jars=$(ls "$dir"/*.jar | wc -l)"
}

# ---------------------------------------------------------------------------------------------- install
installed() { [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$RECIPE" ] && [ -x "$OS_HOME/bin/opensearch" ]; }

write_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$RUN_DIR"
  cat >"$OS_HOME/config/opensearch.yml" <<EOF
# Written by localstack/opensearch.sh. http.port is given at start (-Ehttp.port) so OPENSEARCH_PORT works.
cluster.name: $CLUSTER_NAME
node.name: sieve-node-1
path.data: $DATA_DIR
path.logs: $LOG_DIR
network.host: 127.0.0.1
discovery.type: single-node
# A nearly full disk must not make indices read-only or move shards in CI.
cluster.routing.allocation.disk.threshold_enabled: false
cluster.routing.allocation.disk.watermark.low: 97%
cluster.routing.allocation.disk.watermark.high: 98%
cluster.routing.allocation.disk.watermark.flood_stage: 99%
action.auto_create_index: true
EOF
  write_heap_options
  # Keep everything the JVM writes under the SIEVE_HOME folder (the stock options use paths relative to cwd).
  sed -i -e "s#file=logs/gc.log#file=$LOG_DIR/gc.log#" \
         -e "s#^-XX:HeapDumpPath=.*#-XX:HeapDumpPath=$LOG_DIR#" \
         -e "s#^-XX:ErrorFile=.*#-XX:ErrorFile=$LOG_DIR/hs_err_pid%p.log#" \
         "$OS_HOME/config/jvm.options"
}

write_heap_options() { # at install and at every start, so OPENSEARCH_HEAP applies without a reinstall
  printf -- '-Xms%s\n-Xmx%s\n' "$HEAP" "$HEAP" >"$OS_HOME/config/jvm.options.d/sieve.options"
}

install_plugin_zip() { # $1 zip
  local java_home; java_home="$(pick_java)"
  run_as_user env OPENSEARCH_JAVA_HOME="$java_home" JAVA_HOME="$java_home" OPENSEARCH_PATH_CONF="$OS_HOME/config" \
    "$OS_HOME/bin/opensearch-plugin" install --batch "file://$1" >"$OS_ROOT/.build/plugin-install.log" 2>&1 || {
      cat "$OS_ROOT/.build/plugin-install.log" >&2; return 1; }
}

do_install() {
  if installed; then
    log "OpenSearch $V already installed in $OS_HOME"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  command -v unzip >/dev/null || die "unzip not found (apt-get install unzip)"
  local t0; t0="$(now)"
  if is_running; then die "a node from a different recipe is running (pid $(pid_of)); stop it first"; fi
  log "installing OpenSearch $V + k-NN $KNN_V${OPTIONAL_PLUGINS:+ + $OPTIONAL_PLUGINS} into $OS_ROOT"
  rm -rf "$OS_HOME" "$OS_ROOT/.build" "$MARKER"
  mkdir -p "$OS_ROOT/.build"

  mvn_copy dist "$OS_ROOT/.build/dist" || die "mvn could not fetch the OpenSearch $V distribution / k-NN $KNN_V zip"
  unzip -q "$OS_ROOT/.build/dist/opensearch-$V.zip" -d "$OS_ROOT"
  [ -x "$OS_HOME/bin/opensearch" ] || die "unexpected layout in opensearch-$V.zip (no bin/opensearch)"

  build_module lang-painless "org.opensearch.painless.PainlessModulePlugin org.opensearch.painless.PainlessPlugin" \
    "" "An easy, safe and fast scripting language for OpenSearch"
  cat >"$OS_HOME/modules/lang-painless/plugin-security.policy" <<'EOF'
grant {
  // needed to generate runtime classes
  permission java.lang.RuntimePermission "createClassLoader";

  // needed to find the classloader to load allowlisted classes from
  permission java.lang.RuntimePermission "getClassLoader";
};
EOF
  build_module analysis-common \
    "org.opensearch.analysis.common.CommonAnalysisModulePlugin org.opensearch.analysis.common.CommonAnalysisPlugin" \
    "lang-painless" "Adds \"built in\" analyzers to OpenSearch."

  write_config
  ensure_user
  own_tree

  log "installing plugin opensearch-knn $KNN_V"
  install_plugin_zip "$OS_ROOT/.build/dist/opensearch-knn-$KNN_V.zip" || die "opensearch-plugin install of k-NN failed"

  local p
  for p in $OPTIONAL_PLUGINS; do  # order matters: job-scheduler, ml-plugin, neural-search
    case "$p" in job-scheduler|ml-plugin|neural-search) ;; *) log "unknown optional plugin '$p' (skipped)"; continue ;; esac
    if mvn_copy "opt-$p" "$OS_ROOT/.build/opt-$p" quiet; then
      log "installing optional plugin opensearch-$p $KNN_V"
      install_plugin_zip "$OS_ROOT/.build/opt-$p/opensearch-$p-$KNN_V.zip" || log "optional plugin $p failed to install (skipped)"
    else
      log "optional plugin opensearch-$p $KNN_V is not served by Maven Central (skipped)"
    fi
  done

  own_tree
  rm -rf "$OS_ROOT/.build"
  echo "$RECIPE" >"$MARKER"
  log "installed in $(elapsed "$t0")s"
}

# ---------------------------------------------------------------------------------------------- run
# The node writes its pid file only some seconds after launch, so a node is also recognised by its
# command line naming this exact home (-Dopensearch.path.home=$OS_HOME): never by a broad process name.
node_pid_from_proc() {
  local d pid
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    local args; args="$(tr '\0' '\n' 2>/dev/null <"$d/cmdline")" || continue
    if grep -qxF -- "-Dopensearch.path.home=$OS_HOME" <<<"$args" && grep -qxF org.opensearch.bootstrap.OpenSearch <<<"$args"; then
      echo "$pid"; return 0
    fi
  done
  return 1
}

pid_of() {
  local pid=""
  [ -f "$PID_FILE" ] && pid="$(tr -d '[:space:]' <"$PID_FILE")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
  node_pid_from_proc
}

is_running() { pid_of >/dev/null; }

# When the node is running, health checks go to the port it was started on.
adopt_running_port() {
  local recorded=""
  [ -f "$PORT_FILE" ] && recorded="$(tr -d '[:space:]' <"$PORT_FILE")"
  [ -n "$recorded" ] || return 0
  if [ -n "$PORT_REQUESTED" ] && [ "$PORT_REQUESTED" != "$recorded" ]; then
    die "the node in $OS_ROOT is already running on port $recorded, not $PORT_REQUESTED: stop it first, or use OPENSEARCH_PORT=$recorded"
  fi
  PORT="$recorded"
}

health() { # prints the status word (green/yellow/red) or nothing
  curl -s --max-time 5 "http://127.0.0.1:$PORT/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null \
    | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' || true
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

print_log_tail() {
  local f
  for f in "$LOG_DIR/$CLUSTER_NAME.log" "$RUN_DIR/launcher.out"; do
    [ -s "$f" ] || continue
    printf '\n----- last 60 lines of %s -----\n' "$f" >&2
    tail -n 60 "$f" >&2
  done
}

do_start() {
  local t0; t0="$(now)"
  do_install
  if is_running; then
    adopt_running_port
    local h; h="$(health)"
    if [ "$h" = "green" ] || [ "$h" = "yellow" ]; then
      log "already running (pid $(pid_of), http://127.0.0.1:$PORT, $h)"
      return 0
    fi
    log "running (pid $(pid_of)) but not healthy yet; waiting"
  else
    rm -f "$PID_FILE" "$PORT_FILE"
    if port_busy; then
      die "127.0.0.1:$PORT is already in use by another process; set OPENSEARCH_PORT or stop it"
    fi
    ensure_user
    write_heap_options
    own_tree
    local java_home; java_home="$(pick_java)"
    log "starting OpenSearch $V on 127.0.0.1:$PORT as $( [ "$(id -u)" -eq 0 ] && echo "$OS_USER" || id -un ) (java $(java_major "$java_home"), heap $HEAP)"
    if ! (cd "$OS_HOME" && run_as_user env -u OPENSEARCH_JAVA_OPTS \
            OPENSEARCH_JAVA_HOME="$java_home" JAVA_HOME="$java_home" OPENSEARCH_PATH_CONF="$OS_HOME/config" \
            "$OS_HOME/bin/opensearch" -d -p "$PID_FILE" -Ehttp.port="$PORT" >"$RUN_DIR/launcher.out" 2>&1 9>&-); then
      rm -f "$PORT_FILE"
      print_log_tail
      die "bin/opensearch exited with an error before the node came up"
    fi
    echo "$PORT" >"$PORT_FILE"
  fi
  local deadline=$(( $(date +%s) + START_TIMEOUT )) h=""
  while [ "$(date +%s)" -lt "$deadline" ]; do
    h="$(health)"
    if [ "$h" = "green" ] || [ "$h" = "yellow" ]; then
      local total; total="$(elapsed "$t0")"
      log "up: http://127.0.0.1:$PORT status=$h pid=$(pid_of) in ${total}s"
      printf '{"version":"%s","port":%s,"status":"%s","seconds":%s}\n' "$V" "$PORT" "$h" "$total" >"$RUN_DIR/last-start.json"
      return 0
    fi
    if ! is_running; then
      sleep 1; is_running || break  # the launcher may not have exec'd java yet
    fi
    sleep 0.5
  done
  print_log_tail
  if is_running; then
    die "OpenSearch did not reach green/yellow within ${START_TIMEOUT}s (pid $(pid_of) still running; status '${h:-none}')"
  fi
  rm -f "$PID_FILE" "$PORT_FILE"
  die "OpenSearch exited during start-up (see the log tail above; full logs in $LOG_DIR)"
}

do_stop() {
  if ! is_running; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  local pid; pid="$(pid_of)"
  log "stopping pid $pid"
  kill -TERM "$pid"

  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE" "$PORT_FILE"; log "stopped"; return 0; }
    sleep 0.5
  done
  log "pid $pid did not stop within 30s; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PID_FILE" "$PORT_FILE"
}

do_status() {
  if ! installed; then echo "opensearch $V: not installed ($OS_ROOT)"; fi
  if is_running; then
    [ -f "$PORT_FILE" ] && PORT="$(tr -d '[:space:]' <"$PORT_FILE")"
    local h; h="$(health)"
    echo "opensearch $V: running pid=$(pid_of) url=http://127.0.0.1:$PORT health=${h:-unreachable} home=$OS_HOME"
    [ -n "$h" ] && [ "$h" != "red" ] && return 0
    return 1
  fi
  if [ -e "$OS_ROOT/.lock" ] && ! flock -n "$OS_ROOT/.lock" true 2>/dev/null; then
    echo "opensearch $V: busy (an install/start/stop is in progress)"
    return 3
  fi
  echo "opensearch $V: stopped"
  return 3
}

# ---------------------------------------------------------------------------------------------- bench
do_bench() {
  local out="$REPO_ROOT/bench/results/opensearch-start.json" fresh_m2=0 repo=""
  [ "${1:-}" = "--fresh-m2" ] && fresh_m2=1
  do_stop
  find "$OS_ROOT" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
  if [ "$fresh_m2" = 1 ]; then
    repo="$(mktemp -d)"
    export MAVEN_OPTS="${MAVEN_OPTS:-} -Dmaven.repo.local=$repo"
    log "bench: empty maven repository $repo"
  fi
  local load_before t0 install_s cold warm
  load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
  t0="$(now)"; do_install; install_s="$(elapsed "$t0")"
  do_start; cold="$(elapsed "$t0")"
  do_stop
  t0="$(now)"; do_start; warm="$(elapsed "$t0")"
  local m2_path="${repo:-$HOME/.m2}" m2
  m2="$(du -sm "$m2_path" 2>/dev/null | cut -f1)"
  [ -n "$repo" ] && rm -rf "$repo"
  local plugins modules
  plugins="$(curl -s "http://127.0.0.1:$PORT/_cat/plugins?h=component,version" | awk '{printf "%s\"%s %s\"", (NR>1?",":""), $1, $2}')"
  modules="$(curl -s "http://127.0.0.1:$PORT/_nodes/plugins?filter_path=**.modules.name" | grep -o '"name":"[^"]*"' | cut -d'"' -f4 | awk '{printf "%s\"%s\"", (NR>1?",":""), $1}')"
  mkdir -p "$(dirname "$out")"
  python3 - "$out" "$fresh_m2" "$install_s" "$cold" "$warm" "$V" "$KNN_V" "$m2" "[$plugins]" "[$modules]" \
    "$(java_major "$(pick_java)")" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(du -sm "$OS_HOME" | cut -f1)" <<'EOF'
import json, os, sys, time
(out, fresh, install_s, cold, warm, v, knn, m2, plugins, modules, java, load0, load1, home_mb) = sys.argv[1:]
data = json.load(open(out)) if os.path.exists(out) else {}
data.update({
    "opensearch_version": v, "knn_version": knn, "java_major": int(java),
    "plugins": json.loads(plugins), "modules": json.loads(modules), "node_folder_megabytes": int(home_mb),
    "what": "cold = nothing unpacked in SIEVE_HOME, through install to green/yellow; warm = stop, then start "
            "of the installed node to green/yellow. 'empty_m2' runs start from an empty maven repository.",
})
kind = "empty_m2" if fresh == "1" else "cached_m2"
data[kind] = {
    "install_seconds": float(install_s), "cold_install_and_start_seconds": float(cold), "warm_start_seconds": float(warm),
    "maven_repo_megabytes": int(m2 or 0), "cores": os.cpu_count(), "loadavg_before": load0, "loadavg_after": load1,
    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
with open(out, "w") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
print(json.dumps(data[kind], indent=2))
EOF
}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

# One install/start/stop at a time per node folder.
if [ "${1:-}" = status ]; then do_status; exit $?; fi
mkdir -p "$OS_ROOT"
exec 9>"$OS_ROOT/.lock"
if ! flock -w 600 9; then die "another opensearch.sh is busy with $OS_ROOT (lock $OS_ROOT/.lock)"; fi

case "${1:-}" in
  install) do_install ;;
  start)   do_start ;;
  stop)    do_stop ;;
  status)  do_status ;;
  bench)   shift; do_bench "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
