#!/usr/bin/env bash
# The whole lifecycle on the adult data set, in build/demo/, with the embedded defaults
# (MLflow on SQLite, files under build/demo/.keel). Run through `make demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO="$ROOT/build/demo"
SHARED="$ROOT/../shared/datasets/adult.parquet"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
unset MLFLOW_TRACKING_URI

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO" && mkdir -p "$DEMO"
cp "$ROOT/examples/adult/keel.yaml" "$DEMO/keel.yaml"
if [[ -f "$SHARED" ]]; then
  DATA="$SHARED"
  echo "data: $DATA (48,842 rows, UCI Adult)"
else
  DATA="$DEMO/adult_sample.parquet"
  cp "$ROOT/examples/adult/adult_sample.parquet" "$DATA"
  echo "data: the 5,000-row sample shipped in examples/adult (../shared/datasets is absent)"
fi
sed -i "s|^data: .*|data: $DATA|" "$DEMO/keel.yaml"
cd "$DEMO"

step "keel analyze: triage and a content-addressed snapshot"
keel analyze "$DATA" --target income

step "keel run: plan, then train (baseline, linear, LightGBM, XGBoost searched within keel.yaml's 30 s budget, tracked in MLflow) -> export (ONNX + parity) -> promote"
keel run

PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "keel serve on 127.0.0.1:$PORT"
keel serve --port "$PORT" > serve.log 2>&1 &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break
  sleep 0.2
done
cat serve.log
echo "GET /health -> $(curl -s "http://127.0.0.1:$PORT/health")"

step "POST /predict: one good row, then one bad row (422 names the column)"
ROW='{"age": 52, "workclass": "Private", "fnlwgt": 209642, "education": "Masters", "education-num": 14,
  "marital-status": "Married-civ-spouse", "occupation": "Exec-managerial", "relationship": "Husband",
  "race": "White", "sex": "Male", "capital-gain": 15024, "capital-loss": 0, "hours-per-week": 50,
  "native-country": "United-States"}'
curl -s -X POST "http://127.0.0.1:$PORT/predict" -H 'content-type: application/json' -d "{\"rows\": [$ROW]}"
echo
curl -s -X POST "http://127.0.0.1:$PORT/predict" -H 'content-type: application/json' \
  -d '{"rows": [{"age": "fifty", "workclass": "Private"}]}' | head -c 400
echo

step "traffic: 1,000 typical rows, then 1,000 rows from an older, longer-working population"
python - "$DATA" "$PORT" <<'PY'
import json, sys
import httpx, pandas as pd
data, port = sys.argv[1], sys.argv[2]
sample = pd.read_parquet(data).sample(2000, random_state=1).reset_index(drop=True)
sample["row_id"] = [f"r{i}" for i in range(len(sample))]  # serving.id_column: logged with each prediction
rows = json.loads(sample.drop(columns=["income", "split"]).to_json(orient="records"))
for r in rows[1000:]:
    r["age"] = min(int(r["age"]) + 20, 90)
    r["hours-per-week"] = 60
with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
    for start in range(0, 2000, 100):
        client.post("/predict", json={"rows": rows[start:start + 100]}).raise_for_status()
sample[["row_id", "income"]].to_csv("labels.csv", index=False)  # the outcomes, as they would arrive later
print("sent 2,000 rows in 20 requests; their labels are in labels.csv")
PY
kill -INT $SERVER && wait $SERVER || true
trap - EXIT

step "keel predict: batch scoring with the same ONNX bundle"
keel predict "$DATA" -o "$DEMO/predictions.parquet"

step "keel monitor --labels: logged traffic vs the training profile, and performance from the labels joined by row_id"
keel monitor --labels labels.csv

step "keel retrain: the champion was promoted minutes ago, so the cooldown holds (cron: keel retrain --trigger drift)"
keel retrain

SMS="$ROOT/../shared/datasets/sms_spam.parquet"
if [[ -f "$SMS" ]]; then
  step "text: sms_spam (5,574 texts) planned by its label count: TF-IDF, sentence embeddings and LoRA, exported with its tokenizer"
  mkdir -p "$DEMO/sms" && cd "$DEMO/sms"
  cat > keel.yaml <<YAML
name: sms-spam
data: $SMS
target: label
task: text
train: {budget_seconds: 150}
text: {epochs: 1}                 # LoRA: one epoch, stopped early by the budget on a CPU (docs/text.md)
export: {quantize: true}          # INT8 kept only if accuracy drops by less than 1 point
YAML
  keel run
  printf 'text\nWINNER!! You have been selected for a FREE prize. Call 09061701461 now\nsee you at lunch?\n' > texts.csv
  keel predict texts.csv -o scored.csv && cat scored.csv
  cd "$DEMO"
fi

step "Where to look"
VERSION="$(python -c 'import json; print(json.load(open(".keel/serving/adult-income.json"))["aliases"]["champion"])')"
echo "champion model    adult-income@$VERSION"
echo "bundle (ONNX)     $DEMO/.keel/bundles/adult-income/$VERSION"
echo "prediction log    $DEMO/.keel/predictions/adult-income/"
echo "monitor reports   $DEMO/.keel/reports/"
echo "batch predictions $DEMO/predictions.parquet"
[[ -d "$DEMO/sms/.keel" ]] && echo "text model        $DEMO/sms/.keel/bundles/sms-spam (ONNX + tokenizer.json)"
echo "MLflow runs       mlflow ui --backend-store-uri sqlite:///$DEMO/.keel/mlflow.db"
