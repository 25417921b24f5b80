#!/usr/bin/env bash
# The README's first command: on a fresh Debian machine (no GPU needed) it
#   1. installs the missing packages and builds ftplat (Release);
#   2. starts a private PostgreSQL and Redis, applies the schema;
#   3. starts ft-api, ft-scheduler and one ft-worker (GPUs when present);
#   4. creates a team and an admin key, registers the bundled model
#      (data/models/ftplat-tiny-cs, a small Llama pretrained by ftplat);
#   5. fine-tunes it with LoRA on the bundled bilingual customer-service
#      dialogues through `ftctl jobs create --follow`;
#   6. prints the held-out loss before and after, and the base and the
#      fine-tuned model answering held-out customer questions.
# Everything lives in .ftplat/ (FT_STATE_DIR). Running it again reuses the
# running services and runs a new job.
#
#   deploy/quickstart.sh          set up, start, fine-tune
#   deploy/quickstart.sh stop     stop everything it started
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state=${FT_STATE_DIR:-$root/.ftplat}
build=${FT_QUICKSTART_BUILD:-$root/build-release}
mkdir -p "$state/logs"

stop_daemons() {
  for d in worker scheduler api; do
    if [ -f "$state/$d.pid" ]; then
      kill "$(cat "$state/$d.pid")" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$(cat "$state/$d.pid")" 2>/dev/null || break; sleep 0.1; done
      rm -f "$state/$d.pid"
    fi
  done
}

if [ "${1:-}" = stop ]; then
  stop_daemons
  deploy/dev/services.sh stop "$state" >/dev/null 2>&1 || true
  echo "stopped ftplat (state kept in $state; delete it to start from scratch)"
  exit 0
fi

step() { printf '\n==> %s\n' "$*"; }
t0=$(date +%s)

step "packages"
deploy/install-deps.sh

step "build ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >"$state/logs/cmake.log" 2>&1 \
  || { cat "$state/logs/cmake.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target ft-api ft-scheduler ft-worker ft-train ft-migrate ftctl \
  >"$state/logs/build.log" 2>&1 || { tail -30 "$state/logs/build.log"; exit 1; }

step "PostgreSQL and Redis"
if [ -f "$state/env" ] && . "$state/env" && \
   psql "$FT_DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1 && \
   redis-cli -u "$FT_REDIS_URL" ping 2>/dev/null | grep -q PONG; then
  echo "reusing the running servers"
else
  deploy/dev/services.sh stop "$state" >/dev/null 2>&1 || true
  deploy/dev/services.sh start "$state" >/dev/null
  . "$state/env"
fi
export FT_DATABASE_URL FT_REDIS_URL
"$build/migrations/ft-migrate" --database-url "$FT_DATABASE_URL" up

export FT_STORE_DIR="$state/store" FT_WORK_DIR="$state/work" FT_LOG_LEVEL=${FT_LOG_LEVEL:-warn}
export FT_TRAINER_PATH="$build/trainer/ft-train"
running() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

step "ft-api, ft-scheduler, ft-worker"
if ! running api; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  echo "$port" > "$state/api.port"
  FT_LISTEN_PORT=$port nohup "$build/api/ft-api" serve >>"$state/logs/api.log" 2>&1 &
  echo $! > "$state/api.pid"
fi
port=$(cat "$state/api.port")
export FT_API_URL="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs "$FT_API_URL/v1/openapi.json" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$FT_API_URL/v1/openapi.json" >/dev/null || { tail -20 "$state/logs/api.log"; exit 1; }
if ! running scheduler; then
  nohup "$build/scheduler/ft-scheduler" >>"$state/logs/scheduler.log" 2>&1 &
  echo $! > "$state/scheduler.pid"
fi
if ! running worker; then
  FT_WORKER_ID=${FT_WORKER_ID:-wrk-quickstart} nohup "$build/worker/ft-worker" >>"$state/logs/worker.log" 2>&1 &
  echo $! > "$state/worker.pid"
fi
echo "API on $FT_API_URL (logs in $state/logs)"

step "team, key and base model"
if [ ! -s "$state/api.key" ]; then
  team=$("$build/api/ft-api" admin create-team quickstart | head -1)
  "$build/api/ft-api" admin create-key --team "$team" --role admin --name quickstart | tail -1 > "$state/api.key"
  "$build/api/ft-api" admin register-model --name ftplat-tiny-cs --path "$root/data/models/ftplat-tiny-cs" \
    --team "$team" >/dev/null
fi
export FT_API_KEY=$(cat "$state/api.key")
ctl="$build/cli/ftctl"
"$ctl" models list

step "fine-tune (LoRA) on data/customer-service"
data=$root/data/customer-service
"$ctl" jobs create --model ftplat-tiny-cs --training-file "$data/train.jsonl" \
  --validation-file "$data/validation.jsonl" --epochs "${FT_QUICKSTART_EPOCHS:-5}" \
  --lora-r 16 --lr-multiplier "${FT_QUICKSTART_LR_MULT:-10}" --suffix support --seed 42 \
  --follow | tee "$state/follow.log"
job=$(sed -n 's/^created \(ftjob-[0-9A-Za-z]*\)$/\1/p' "$state/follow.log" | head -1)
[ -n "$job" ] || { echo "quickstart: the job was not created" >&2; exit 1; }

step "result"
"$ctl" --json jobs get "$job" > "$state/job.json"
python3 - "$state/job.json" <<'PY'
import json, os, sys, urllib.request
job = json.load(open(sys.argv[1]))
url, key = os.environ["FT_API_URL"], os.environ["FT_API_KEY"]
events, after = [], None
while True:   # every event, page by page (newest first)
    q = f"{url}/v1/fine_tuning/jobs/{job['id']}/events?limit=100" + (f"&after={after}" if after else "")
    page = json.load(urllib.request.urlopen(urllib.request.Request(q, headers={"Authorization": f"Bearer {key}"})))
    events += page["data"]
    if not page["has_more"]:
        break
    after = page["last_id"]
evals = sorted((e["data"]["step"], e["data"]["eval_loss"]) for e in events
               if isinstance(e.get("data"), dict) and e["data"].get("type") == "eval")
print(f"fine-tuned model: {job.get('fine_tuned_model')}  ({job.get('trained_tokens')} tokens trained)")
if evals:
    print("held-out loss on data/customer-service/validation.jsonl (assistant tokens):")
    print(f"  base model       {evals[0][1]:.4f}   (before training)")
    print(f"  fine-tuned model {evals[-1][1]:.4f}   (after {evals[-1][0]} steps)")
PY
adapter=$(ls -d "$FT_WORK_DIR/$job"-*/out/adapter 2>/dev/null | tail -1)
python3 - "$root" "$FT_TRAINER_PATH" "$adapter" <<'PY'
import json, subprocess, sys
root, trainer, adapter = sys.argv[1:4]
model = f"{root}/data/models/ftplat-tiny-cs"
qs = json.load(open(f"{root}/data/customer-service/heldout_questions.json"))
qs = qs["questions"] if isinstance(qs, dict) else qs
def answer(q, with_adapter):
    sysmsg = q["system"]
    prompt = (f"<|im_start|>system\n{sysmsg}<|im_end|>\n<|im_start|>user\n{q['question']}<|im_end|>\n"
              "<|im_start|>assistant\n")
    cmd = [trainer, "generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "80"]
    if with_adapter:
        cmd += ["--adapter", adapter]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["text"].split("<|im_end|>")[0].strip()
for q in qs:
    print(f"\nQ: {q['question']}")
    print(f"  base:       {answer(q, False)}")
    if adapter:
        print(f"  fine-tuned: {answer(q, True)}")
    ref = q.get("reference_answer")
    if ref:
        print(f"  reference:  {ref}")
PY
echo
echo "done in $(( $(date +%s) - t0 )) s. The services keep running:"
echo "  export FT_API_URL=$FT_API_URL FT_API_KEY=$FT_API_KEY   # then: $ctl jobs list"
echo "  stop everything: deploy/quickstart.sh stop"
