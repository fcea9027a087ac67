#!/bin/sh
# Runs the Worker built by `make workers` locally under wrangler (workerd)
# and checks it: the page and go-app's files come from Go with the security
# headers, /web/ from the asset store with application/wasm; then the demo
# analysis runs in headless Chromium against it (app/e2e TestDeployedURL)
# and `wrangler deploy --dry-run` reports the upload size. Offline: npm is
# only used to install wrangler under workers/node_modules/ the first time.
set -eu
cd "$(dirname "$0")"
[ -f build/worker.mjs ] || { echo "workers/build is missing: run make workers" >&2; exit 1; }
if [ ! -x node_modules/.bin/wrangler ]; then
	# 4.86.0 is the last wrangler that runs on Node 20.
	npm install --no-save --no-audit --no-fund --no-package-lock wrangler@4.86.0
fi
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false WRANGLER_HIDE_BANNER=true
export CLOUDFLARE_CF_FETCH_ENABLED=false # else miniflare reaches for the internet
PORT=${PORT:-8787}
URL=http://127.0.0.1:$PORT
node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$PORT" >build/wrangler.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT INT TERM
i=0
until curl -sf -o /dev/null "$URL/"; do
	i=$((i + 1))
	if [ $i -gt 60 ]; then
		cat build/wrangler.log >&2
		exit 1
	fi
	sleep 0.5
done
fail() { echo "workers check: $*" >&2; cat build/wrangler.log >&2; exit 1; }
header() { curl -s -o /dev/null -D - "$@" | tr -d '\r'; }
header "$URL/" | grep -qi "^content-security-policy: .*wasm-unsafe-eval" || fail "/ has no CSP"
header -I "$URL/" | grep -q "^HTTP/1.1 200" || fail "HEAD / failed"
header "$URL/web/app.wasm" | grep -qi "^content-type: application/wasm" || fail "app.wasm is not application/wasm"
header "$URL/" | grep -qi "^cross-origin-embedder-policy: require-corp" || fail "/ is not cross-origin isolated (COEP)"
header "$URL/web/app.wasm" | grep -qi "^cross-origin-embedder-policy: require-corp" || fail "app.wasm has no COEP (_headers)"
header "$URL/web/demo/models/fmnist-vit.safetensors" | grep -q "^HTTP/1.1 200" || fail "the demo model is not served"
header "$URL/app-worker.js" | grep -qi "^content-type: text/javascript" || fail "app-worker.js type"
header "$URL/nope" | grep -q "^HTTP/1.1 404" || fail "unknown path is not 404"
echo "workers check: headers OK at $URL"
(cd .. && VITLENS_E2E_URL="$URL/" go test -count=1 -run TestDeployedURL -v ./app/e2e) || fail "browser check failed"
node_modules/.bin/wrangler deploy --dry-run --outdir build/dist 2>&1 | grep -i -E "upload|size" || true
