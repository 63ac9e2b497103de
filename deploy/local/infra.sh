#!/usr/bin/env bash
# Runs the pipeline's real infrastructure natively (no Docker): Apache Kafka (KRaft), Elasticsearch
# and Jaeger, all bound to 127.0.0.1. Everything downloaded or built is cached outside the clone
# under $TWEETPIPE_HOME, so a fresh machine pays the set-up once and later `up`s take seconds.
#
#   deploy/local/infra.sh up|down|status [kafka] [elasticsearch] [jaeger]   (no component = all)
#
# See deploy/local/README.md for ports, environment variables and log locations.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

TWEETPIPE_HOME="${TWEETPIPE_HOME:-$HOME/.cache/tweet-pipeline}"
DOWNLOADS_DIR="$TWEETPIPE_HOME/downloads"
BIN_DIR="$TWEETPIPE_HOME/bin"
# A private instance (the fault tests start one beside the shared servers) sets its own run dir
# (data, logs, pids) and ports, and reuses the cached downloads.
RUN_DIR="${TWEETPIPE_RUN_DIR:-$TWEETPIPE_HOME/run}"

MAVEN_CENTRAL="${TWEETPIPE_MAVEN_URL:-https://repo.maven.apache.org/maven2}"
KAFKA_VERSION="3.9.1"  # pinned in deploy/local/kafka/pom.xml too
ES_VERSION="${TWEETPIPE_ES_VERSION:-8.19.4}"
# Jaeger: the release archive (with the web UI) where reachable, else a build from the Go module.
# The build is pinned to v1.75.0, the newest release the Go module proxy lists (v1.76.0 is served
# but not listed); the built binary's cache path carries its version, so a new pin is built afresh.
JAEGER_VERSION="${TWEETPIPE_JAEGER_VERSION:-v1.76.0}"
JAEGER_MODULE_VERSION="${TWEETPIPE_JAEGER_MODULE_VERSION:-v1.75.0}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

BIND_HOST="127.0.0.1"
KAFKA_PORT="${TWEETPIPE_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${TWEETPIPE_KAFKA_CONTROLLER_PORT:-9093}"
ES_PORT="${TWEETPIPE_ES_PORT:-9200}"
ES_TRANSPORT_PORT="${TWEETPIPE_ES_TRANSPORT_PORT:-9300}"
JAEGER_UI_PORT="${TWEETPIPE_JAEGER_UI_PORT:-16686}"
JAEGER_QUERY_GRPC_PORT="${TWEETPIPE_JAEGER_QUERY_GRPC_PORT:-16685}"
JAEGER_ADMIN_PORT="${TWEETPIPE_JAEGER_ADMIN_PORT:-14269}"
JAEGER_COLLECTOR_GRPC_PORT="${TWEETPIPE_JAEGER_COLLECTOR_GRPC_PORT:-14250}"
JAEGER_COLLECTOR_HTTP_PORT="${TWEETPIPE_JAEGER_COLLECTOR_HTTP_PORT:-14268}"
OTLP_GRPC_PORT="${TWEETPIPE_OTLP_GRPC_PORT:-4317}"
OTLP_HTTP_PORT="${TWEETPIPE_OTLP_HTTP_PORT:-4318}"

KAFKA_HEAP_OPTS="${TWEETPIPE_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
ES_HEAP_OPTS="${TWEETPIPE_ES_HEAP_OPTS:--Xms512m -Xmx512m}"
WAIT_SECONDS="${TWEETPIPE_WAIT_SECONDS:-180}"
STOP_SECONDS="${TWEETPIPE_STOP_SECONDS:-60}"
# Elasticsearch refuses to run as root; when we are root it runs as this unprivileged user.
SERVICE_USER="${TWEETPIPE_SERVICE_USER:-tweetpipe}"

ALL_COMPONENTS=(kafka elasticsearch jaeger)

log() { printf '[infra] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required ($2)"
}

java17_home() {
  local candidate
  for candidate in "${TWEETPIPE_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 "${JAVA_HOME:-}"; do
    if [[ -n "$candidate" && -x "$candidate/bin/java" ]]; then
      printf '%s\n' "$candidate"
      return
    fi
  done
  local java_bin
  java_bin="$(command -v java)" || die "no JDK found: install JDK 17 or set TWEETPIPE_JAVA_HOME"
  dirname "$(dirname "$(readlink -f "$java_bin")")"
}

# ---------------------------------------------------------------------------------------------
# process bookkeeping: a pid counts only while its command line still names our server, so a
# stale pid file whose number was reused by another process is never mistaken for a live server.

pid_file() { printf '%s/%s/%s.pid\n' "$RUN_DIR" "$1" "$1"; }
log_file() {
  case "$1" in
    kafka) printf '%s/kafka/logs/server.log\n' "$RUN_DIR" ;;
    elasticsearch) printf '%s/elasticsearch/logs/tweet-pipeline.log\n' "$RUN_DIR" ;;
    jaeger) printf '%s/jaeger/jaeger.log\n' "$RUN_DIR" ;;
  esac
}
cmdline_marker() {
  case "$1" in
    kafka) printf 'kafka.Kafka' ;;
    elasticsearch) printf 'org.elasticsearch' ;;
    jaeger) printf 'jaeger-all-in-one' ;;
  esac
}

running_pid() {
  local component="$1" file pid
  file="$(pid_file "$component")"
  [[ -s "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(cmdline_marker "$component")" || return 1
  printf '%s\n' "$pid"
}

show_log_tail() {
  local file errors
  for file in "$@"; do
    [[ -s "$file" ]] || continue
    # Shutdown chatter follows the cause, so surface the first error lines before the tail.
    errors="$(grep -E -m 8 'ERROR|FATAL|Exception|error:|panic' "$file" || true)"
    if [[ -n "$errors" ]]; then
      log "---- first errors in $file ----"
      printf '%s\n' "$errors" | cut -c1-400 >&2
    fi
    log "---- last lines of $file ----"
    tail -n 25 "$file" | cut -c1-400 >&2
  done
}

# ---------------------------------------------------------------------------------------------
# health probes (each bounded by a few seconds)

kafka_healthy() {
  python3 "$SCRIPT_DIR/kafka/kafka_ready.py" "$BIND_HOST" "$KAFKA_PORT" 3 2>/dev/null
}

elasticsearch_healthy() {
  curl -fsS -m 10 -o /dev/null \
    "http://$BIND_HOST:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null
}

jaeger_healthy() {
  curl -fsS -m 5 -o /dev/null "http://$BIND_HOST:$JAEGER_UI_PORT/api/services" 2>/dev/null || return 1
  # An empty OTLP/HTTP export is accepted only once the receiver is up.
  curl -fsS -m 5 -o /dev/null -X POST -H 'Content-Type: application/json' -d '{}' \
    "http://$BIND_HOST:$OTLP_HTTP_PORT/v1/traces" 2>/dev/null
}

# What answers on the query port: the web UI (release archive), or, from a Go-module build, only
# the query API (its / is Jaeger's "placeholder for the Jaeger UI" page, so no UI address is shown).
jaeger_query_endpoint() {
  local base="http://$BIND_HOST:$JAEGER_UI_PORT" page
  if ! page="$(curl -fsS -m 5 "$base/" 2>/dev/null)"; then
    printf '%s' "$base"
  elif [[ "$page" == *"placeholder for the Jaeger UI"* ]]; then
    printf 'query API %s/api/traces, no web UI in this build' "$base"
  else
    printf 'UI %s' "$base"
  fi
}

endpoint() {
  case "$1" in
    kafka) printf '%s:%s' "$BIND_HOST" "$KAFKA_PORT" ;;
    elasticsearch) printf 'http://%s:%s' "$BIND_HOST" "$ES_PORT" ;;
    jaeger) printf '%s (OTLP grpc :%s, http :%s)' "$(jaeger_query_endpoint)" "$OTLP_GRPC_PORT" "$OTLP_HTTP_PORT" ;;
  esac
}

# Poll until healthy; fail fast when the process died, with its log tail either way.
wait_ready() {
  local component="$1" started_pid="$2" deadline=$((SECONDS + WAIT_SECONDS))
  shift 2
  local logs=("$@")
  while ((SECONDS < deadline)); do
    if "${component}_healthy"; then
      log "$component: ready at $(endpoint "$component") (pid $(running_pid "$component" || echo "$started_pid"))"
      return 0
    fi
    if ! kill -0 "$started_pid" 2>/dev/null && ! running_pid "$component" >/dev/null; then
      log "$component: process exited during start-up"
      show_log_tail "${logs[@]}"
      die "$component failed to start"
    fi
    sleep 1
  done
  show_log_tail "${logs[@]}"
  die "$component not ready after ${WAIT_SECONDS}s (TWEETPIPE_WAIT_SECONDS to wait longer)"
}

# Keep one previous log per file, so a failed start shows only its own errors.
rotate_logs() {
  local file
  for file in "$@"; do
    if [[ -e "$file" ]]; then mv -f "$file" "$file.prev"; fi
  done
}

render() {
  # render TEMPLATE OUT KEY=VALUE...: substitutes @KEY@ placeholders
  local template="$1" out="$2" expr=() pair
  shift 2
  for pair in "$@"; do
    expr+=(-e "s|@${pair%%=*}@|${pair#*=}|g")
  done
  sed "${expr[@]}" "$template" >"$out"
}

# ---------------------------------------------------------------------------------------------
# kafka

kafka_libs() { printf '%s/kafka-%s/libs\n' "$DOWNLOADS_DIR" "$KAFKA_VERSION"; }

kafka_install() {
  local libs
  libs="$(kafka_libs)"
  [[ -f "$libs/.complete" ]] && return 0
  require mvn "to resolve the Kafka jars from Maven Central"
  log "kafka: resolving kafka_2.13:$KAFKA_VERSION and its runtime jars from Maven Central"
  rm -rf "$libs.tmp"
  local install_log="$RUN_DIR/kafka/install.log"
  mvn -B --no-transfer-progress -Dstyle.color=never -f "$SCRIPT_DIR/kafka/pom.xml" \
    "$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$libs.tmp" \
    >"$install_log" 2>&1 || { show_log_tail "$install_log"; die "mvn could not resolve the Kafka jars"; }
  touch "$libs.tmp/.complete"
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
}

kafka_java() {
  local run="$RUN_DIR/kafka"
  "$(java17_home)/bin/java" -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$run/tools-log4j.properties" -cp "$(kafka_libs)/*" "$@"
}

kafka_start() {
  local run="$RUN_DIR/kafka" java_home
  java_home="$(java17_home)"
  mkdir -p "$run/data" "$run/logs"
  cp "$SCRIPT_DIR/kafka/log4j.properties" "$run/log4j.properties"
  cp "$SCRIPT_DIR/kafka/tools-log4j.properties" "$run/tools-log4j.properties"
  render "$SCRIPT_DIR/kafka/server.properties" "$run/server.properties" \
    KAFKA_HOST="$BIND_HOST" KAFKA_PORT="$KAFKA_PORT" KAFKA_CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" \
    KAFKA_DATA_DIR="$run/data"
  if [[ ! -f "$run/data/meta.properties" ]]; then
    [[ -s "$run/cluster-id" ]] || kafka_java kafka.tools.StorageTool random-uuid >"$run/cluster-id"
    log "kafka: formatting KRaft storage (cluster id $(cat "$run/cluster-id"))"
    kafka_java kafka.tools.StorageTool format --ignore-formatted \
      -t "$(cat "$run/cluster-id")" -c "$run/server.properties" >"$run/logs/format.log" 2>&1 \
      || { show_log_tail "$run/logs/format.log"; die "kafka storage format failed"; }
  fi
  rotate_logs "$run/logs/server.log" "$run/logs/controller.log"
  log "kafka: starting $KAFKA_VERSION (KRaft) on $BIND_HOST:$KAFKA_PORT"
  # shellcheck disable=SC2086  # heap options are a word list on purpose
  (cd "$run" && exec setsid "$java_home/bin/java" $KAFKA_HEAP_OPTS -server -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dkafka.logs.dir="$run/logs" -Dlog4j.configuration="file:$run/log4j.properties" \
    -cp "$(kafka_libs)/*" kafka.Kafka "$run/server.properties" \
    >"$run/logs/stdout.log" 2>&1 </dev/null 9>&-) &
  local pid=$!
  echo "$pid" >"$(pid_file kafka)"
  wait_ready kafka "$pid" "$run/logs/stdout.log" "$run/logs/server.log"
}

# ---------------------------------------------------------------------------------------------
# elasticsearch

es_home() { printf '%s/elasticsearch-%s\n' "$DOWNLOADS_DIR" "$ES_VERSION"; }

elasticsearch_install() {
  local home zip url expected actual
  home="$(es_home)"
  [[ -f "$home/.complete" ]] && return 0
  require curl "to download Elasticsearch"
  require python3 "to unpack Elasticsearch"
  zip="$DOWNLOADS_DIR/elasticsearch-$ES_VERSION.zip"
  url="$MAVEN_CENTRAL/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip"
  log "elasticsearch: downloading $ES_VERSION (integ-test-zip) from Maven Central"
  curl -fsSL --retry 3 -o "$zip.part" "$url" || die "download failed: $url"
  expected="$(curl -fsSL --retry 3 "$url.sha1" | cut -c1-40)" || die "checksum download failed: $url.sha1"
  actual="$(sha1sum "$zip.part" | cut -c1-40)"
  [[ "$expected" == "$actual" ]] || die "checksum mismatch for $url ($actual != $expected)"
  rm -rf "$home.tmp"
  # python keeps the unix modes (bin/ scripts must stay executable) and spares us needing unzip.
  python3 - "$zip.part" "$home.tmp" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for info in archive.infolist():
        path = archive.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
PY
  rm -rf "$home"
  mv "$home.tmp/elasticsearch-$ES_VERSION" "$home"
  rm -rf "$home.tmp" "$zip.part"
  touch "$home/.complete"
}

ensure_service_user() {
  id -u "$SERVICE_USER" >/dev/null 2>&1 && return 0
  require useradd "to create the unprivileged '$SERVICE_USER' user Elasticsearch runs as"
  log "elasticsearch: creating system user '$SERVICE_USER' (Elasticsearch refuses to run as root)"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
}

# The service user must be able to reach the cache (e.g. /root is 0700): grant search (x) only,
# top-down, and only on the directories that actually block it.
ensure_traversable() {
  local path="$1" dir="" part
  local parts
  IFS=/ read -r -a parts <<<"${path#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    if ! runuser -u "$SERVICE_USER" -- test -x "$dir" 2>/dev/null; then
      log "elasticsearch: granting others search permission (o+x) on $dir so '$SERVICE_USER' can reach the cache"
      chmod o+x "$dir"
    fi
  done
}

elasticsearch_start() {
  local run="$RUN_DIR/elasticsearch" home java_home
  home="$(es_home)"
  java_home="$(java17_home)"
  mkdir -p "$run/data" "$run/logs" "$run/tmp" "$run/config"
  # Config lives in the run dir: ES writes its keystore there on first start.
  cp -r "$home/config/." "$run/config/"
  render "$SCRIPT_DIR/elasticsearch/elasticsearch.yml" "$run/config/elasticsearch.yml" \
    ES_DATA_DIR="$run/data" ES_LOG_DIR="$run/logs" ES_HOST="$BIND_HOST" ES_PORT="$ES_PORT" \
    ES_TRANSPORT_PORT="$ES_TRANSPORT_PORT"
  rm -f "$(pid_file elasticsearch)"
  rotate_logs "$(log_file elasticsearch)"
  local launcher=(env)
  if [[ "$(id -u)" == 0 ]]; then
    require runuser "to run Elasticsearch as '$SERVICE_USER'"
    ensure_service_user
    ensure_traversable "$home"
    ensure_traversable "$run"
    chown -R "$SERVICE_USER:" "$run"
    launcher=(runuser -u "$SERVICE_USER" -- env)
  fi
  log "elasticsearch: starting $ES_VERSION on $BIND_HOST:$ES_PORT${launcher[1]:+ as $SERVICE_USER}"
  # -d daemonises once the node has started and writes the server's pid; we poll health ourselves.
  (cd "$run" && exec setsid "${launcher[@]}" HOME="$run" ES_JAVA_HOME="$java_home" \
    ES_PATH_CONF="$run/config" ES_TMPDIR="$run/tmp" ES_JAVA_OPTS="$ES_HEAP_OPTS" \
    "$home/bin/elasticsearch" -d -p "$(pid_file elasticsearch)" \
    >"$run/logs/startup.log" 2>&1 </dev/null 9>&-) &
  wait_ready elasticsearch "$!" "$run/logs/startup.log" "$(log_file elasticsearch)"
}

# ---------------------------------------------------------------------------------------------
# jaeger

# The official release archive embeds the web UI; the Go module does not carry the UI's built
# assets, so a build from it serves the query API (/api/traces) but no UI. The archive is tried
# first with a short connect timeout; where it is unreachable the failure is remembered for a day
# (no delay on every start) and the Go-module build of the same version is used instead.
JAEGER_RELEASE_URL="${TWEETPIPE_JAEGER_RELEASE_URL:-https://github.com/jaegertracing/jaeger/releases/download}"
JAEGER_RELEASE_CONNECT_TIMEOUT="${TWEETPIPE_JAEGER_RELEASE_CONNECT_TIMEOUT:-5}"
JAEGER_RELEASE_RETRY_SECONDS="${TWEETPIPE_JAEGER_RELEASE_RETRY_SECONDS:-86400}"

jaeger_release_bin() { printf '%s/jaeger-all-in-one-%s-release\n' "$BIN_DIR" "$JAEGER_VERSION"; }
jaeger_built_bin() { printf '%s/jaeger-all-in-one-%s\n' "$BIN_DIR" "$JAEGER_MODULE_VERSION"; }
jaeger_bin() {
  if [[ -x "$(jaeger_release_bin)" ]]; then jaeger_release_bin; else jaeger_built_bin; fi
}

jaeger_release_install() {
  local bin arch name archive unreachable extract found
  bin="$(jaeger_release_bin)"
  [[ -x "$bin" ]] && return 0
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) return 1 ;;
  esac
  name="jaeger-${JAEGER_VERSION#v}-linux-$arch"
  archive="$DOWNLOADS_DIR/$name.tar.gz"
  unreachable="$DOWNLOADS_DIR/$name.unreachable"
  if [[ -f "$unreachable" ]] && (($(date +%s) - $(stat -c %Y "$unreachable") < JAEGER_RELEASE_RETRY_SECONDS)); then
    return 1
  fi
  if [[ ! -s "$archive" ]]; then
    log "jaeger: fetching the release archive (it embeds the web UI): $JAEGER_RELEASE_URL/$JAEGER_VERSION/$name.tar.gz"
    if ! curl -fsSL --connect-timeout "$JAEGER_RELEASE_CONNECT_TIMEOUT" --max-time 600 \
      -o "$archive.$$.tmp" "$JAEGER_RELEASE_URL/$JAEGER_VERSION/$name.tar.gz" 2>"$RUN_DIR/jaeger/release-download.log"; then
      rm -f "$archive.$$.tmp"
      touch "$unreachable"
      log "jaeger: release archive unreachable ($(tail -n 1 "$RUN_DIR/jaeger/release-download.log" | cut -c1-160));" \
        "not retried for ${JAEGER_RELEASE_RETRY_SECONDS}s"
      return 1
    fi
    mv "$archive.$$.tmp" "$archive"
  fi
  extract="$DOWNLOADS_DIR/$name.$$.tmp"
  rm -rf "$extract"
  mkdir -p "$extract"
  tar -xzf "$archive" -C "$extract" || { rm -rf "$extract" "$archive"; log "jaeger: corrupt release archive"; return 1; }
  found="$(find "$extract" -type f -name jaeger-all-in-one | head -n 1)"
  if [[ -z "$found" ]]; then
    rm -rf "$extract"
    log "jaeger: $name.tar.gz has no jaeger-all-in-one"
    return 1
  fi
  mv "$found" "$bin.tmp.$$" && chmod +x "$bin.tmp.$$" && mv "$bin.tmp.$$" "$bin"
  rm -rf "$extract"
  log "jaeger: installed the release binary $bin (with the web UI)"
}

jaeger_install() {
  local bin module_dir work started=$SECONDS
  jaeger_release_install && return 0
  bin="$(jaeger_built_bin)"
  [[ -x "$bin" ]] && return 0
  require go "to build Jaeger from its Go module"
  mkdir -p "$BIN_DIR"
  # Jaeger's go.mod carries replace directives, which `go install pkg@version` refuses, so the
  # module is downloaded and built in a writable copy instead.
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-mod=mod" GOWORK=off
  log "jaeger: downloading github.com/jaegertracing/jaeger@$JAEGER_MODULE_VERSION"
  module_dir="$(cd "$DOWNLOADS_DIR" && go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_MODULE_VERSION" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" \
    || die "go mod download of jaeger $JAEGER_MODULE_VERSION failed"
  # Per-process scratch names: two concurrent first starts must not remove each other's build.
  work="$DOWNLOADS_DIR/jaeger-src-$JAEGER_MODULE_VERSION.$$.tmp"
  rm -rf "$work"
  cp -r "$module_dir" "$work"
  chmod -R u+w "$work"
  local build_log="$RUN_DIR/jaeger/build.log"
  log "jaeger: building cmd/all-in-one (the first build takes a few minutes; log: $build_log)"
  (cd "$work" && go build -trimpath -ldflags '-s -w' -o "$bin.tmp.$$" ./cmd/all-in-one) >"$build_log" 2>&1 \
    || { rm -rf "$work"; show_log_tail "$build_log"; die "jaeger build failed"; }
  mv "$bin.tmp.$$" "$bin"
  rm -rf "$work"
  log "jaeger: built $bin in $((SECONDS - started))s"
}

jaeger_start() {
  local run="$RUN_DIR/jaeger" bin
  bin="$(jaeger_bin)"
  mkdir -p "$run"
  rotate_logs "$run/jaeger.log"
  if [[ "$bin" == "$(jaeger_release_bin)" ]]; then
    log "jaeger: starting $JAEGER_VERSION all-in-one (in-memory) UI http://$BIND_HOST:$JAEGER_UI_PORT"
  else
    log "jaeger: starting $JAEGER_MODULE_VERSION all-in-one (in-memory), built from the Go module: the web UI is" \
      "missing (its assets are not in the module); the query API http://$BIND_HOST:$JAEGER_UI_PORT/api/traces" \
      "and the gateway's GET /tweets/{id}/trace work, and 'docker compose up' has the UI"
  fi
  (cd "$run" && exec setsid env SPAN_STORAGE_TYPE=memory "$bin" \
    --memory.max-traces=100000 \
    --collector.otlp.enabled=true \
    --collector.otlp.grpc.host-port="$BIND_HOST:$OTLP_GRPC_PORT" \
    --collector.otlp.http.host-port="$BIND_HOST:$OTLP_HTTP_PORT" \
    --collector.grpc-server.host-port="$BIND_HOST:$JAEGER_COLLECTOR_GRPC_PORT" \
    --collector.http-server.host-port="$BIND_HOST:$JAEGER_COLLECTOR_HTTP_PORT" \
    --query.http-server.host-port="$BIND_HOST:$JAEGER_UI_PORT" \
    --query.grpc-server.host-port="$BIND_HOST:$JAEGER_QUERY_GRPC_PORT" \
    --admin.http.host-port="$BIND_HOST:$JAEGER_ADMIN_PORT" \
    >"$run/jaeger.log" 2>&1 </dev/null 9>&-) &
  local pid=$!
  echo "$pid" >"$(pid_file jaeger)"
  wait_ready jaeger "$pid" "$run/jaeger.log"
}

# ---------------------------------------------------------------------------------------------
# commands

up_one() {
  local component="$1" pid
  mkdir -p "$DOWNLOADS_DIR" "$BIN_DIR" "$RUN_DIR/$component"
  if pid="$(running_pid "$component")"; then
    if "${component}_healthy"; then
      log "$component: already running (pid $pid) and healthy at $(endpoint "$component")"
      return 0
    fi
    log "$component: running (pid $pid) but not ready yet; waiting"
    wait_ready "$component" "$pid" "$(log_file "$component")"
    return 0
  fi
  if "${component}_healthy"; then
    log "$component: something not started from $TWEETPIPE_HOME already answers at $(endpoint "$component"); using it"
    return 0
  fi
  "${component}_install"
  "${component}_start"
}

down_one() {
  local component="$1" pid deadline
  if ! pid="$(running_pid "$component")"; then
    log "$component: not running"
    rm -f "$(pid_file "$component")"
    return 0
  fi
  log "$component: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_SECONDS))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$component: still running after ${STOP_SECONDS}s; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$component")"
  log "$component: stopped"
}

status_one() {
  local component="$1" pid state health
  if pid="$(running_pid "$component")"; then state="running (pid $pid)"; else state="stopped"; fi
  if "${component}_healthy"; then health="healthy"; else health="not answering"; fi
  printf '%-14s %-22s %-14s %s\n' "$component" "$state" "$health" "$(endpoint "$component")"
  [[ "$health" == healthy ]]
}

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  (($# >= 1)) || usage
  local command="$1" component components=() rc=0
  shift
  for component in "$@"; do
    case "$component" in
      kafka | elasticsearch | jaeger) components+=("$component") ;;
      es) components+=(elasticsearch) ;;
      *) log "unknown component '$component'"; usage ;;
    esac
  done
  ((${#components[@]})) || components=("${ALL_COMPONENTS[@]}")
  if [[ "$command" == up || "$command" == down ]] && command -v flock >/dev/null 2>&1; then
    # Two concurrent `up`s (two terminals, a test run) must not start a server twice.
    local lock="$TWEETPIPE_HOME/.infra.lock"
    [[ -n "${TWEETPIPE_RUN_DIR:-}" ]] && lock="$RUN_DIR/.infra.lock"  # a private instance locks only itself
    mkdir -p "$(dirname "$lock")"
    exec 9>"$lock"
    flock -w "$((WAIT_SECONDS * 3))" 9 || die "another infra.sh holds $lock"
  fi
  case "$command" in
    up)
      require python3 "for the Kafka readiness probe"
      require curl "for the HTTP readiness probes"
      for component in "${components[@]}"; do up_one "$component"; done
      ;;
    down)
      # reverse order: stop what depends on the others first
      local index
      for ((index = ${#components[@]} - 1; index >= 0; index--)); do down_one "${components[index]}"; done
      ;;
    status)
      for component in "${components[@]}"; do status_one "$component" || rc=3; done
      return "$rc"
      ;;
    *) usage ;;
  esac
}

main "$@"
