#!/usr/bin/env bash
# The GPU path measured on a GPU machine, in one run of under 8 minutes:
# the adapter, `vitlens bench --backend gpu` (per-op GFLOP/s and % of the
# GPU's fp32 peak, the lens's share) and `vitlens extract` of IMAGES synthetic
# 224x224 JPEGs through a ViT-B/16-sized random model with all four sites
# (images/s). README.md ("The GPU path on a GPU machine") says how to run it.
#
# Environment (defaults in brackets):
#   IMAGES [4550]     synthetic images extracted (ImageNet-S's stimulus count)
#   BATCH [64]        images per backend call of extract; CHUNK [256] per chunk
#   BATCHES [1,8,64]  batch sizes of the per-op profile; REPS [3] timed replays
#   BIN [.bench]      folder with prebuilt vitlens and synth binaries (each may
#                     be gzipped); without them the script builds them with go
#   WORK [/tmp/vitlens-gpu-bench]  model, images and results
#   BUDGET [450]      seconds the whole script may take; the full extract is
#                     skipped (a tenth is measured) when it would not fit
#   F16 [1]           also measure f16 weights' rank agreement (bench --gpu-f16)
#   SMALL [0]         1: a dry run on a CPU adapter (lavapipe): a small model
#                     of B/16's layout for extract, and bench without B/16
# A folder .gl/ of Debian packages (libvulkan1 ...) is unpacked into / when no
# Vulkan loader is installed; VK_DRIVER_FILES points at NVIDIA's ICD when the
# loader finds none on its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGES=${IMAGES:-4550} BATCH=${BATCH:-64} CHUNK=${CHUNK:-256} BATCHES=${BATCHES:-1,8,64} REPS=${REPS:-3}
BIN=${BIN:-.bench} WORK=${WORK:-/tmp/vitlens-gpu-bench} BUDGET=${BUDGET:-450} F16=${F16:-1} SMALL=${SMALL:-0}
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }
say() { echo "== [$(elapsed) s] $*"; }

# The Vulkan loader, and NVIDIA's driver manifest where the loader misses it.
if ! ldconfig -p | grep 'libvulkan\.so\.1' >/dev/null; then # no -q: with pipefail its early exit would fail ldconfig
	if compgen -G '.gl/*.deb' >/dev/null; then
		say "no Vulkan loader installed: unpacking .gl/*.deb"
		for f in .gl/*.deb; do dpkg -x "$f" /; done
		ldconfig
	else
		say "no Vulkan loader and no .gl/ folder: wgpu will try GL (see README)"
	fi
fi
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nv_icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
	export VK_DRIVER_FILES=$nv_icd
	[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] &&
		export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$WORK/xdg} MESA_SHADER_CACHE_DIR=${MESA_SHADER_CACHE_DIR:-$WORK/mesa-cache}
mkdir -p "$WORK" "$XDG_RUNTIME_DIR" "$MESA_SHADER_CACHE_DIR"

# Binaries: carried (maybe gzipped), else built.
tool() {
	local name=$1 pkg=$2
	if [ -f "$BIN/$name.gz" ] && [ ! -x "$WORK/$name" ]; then
		gunzip -c "$BIN/$name.gz" >"$WORK/$name" && chmod +x "$WORK/$name"
	elif [ -x "$BIN/$name" ]; then
		cp "$BIN/$name" "$WORK/$name"
	elif [ ! -x "$WORK/$name" ]; then
		command -v go >/dev/null || { echo "no $BIN/$name(.gz) and no go to build it" >&2; exit 1; }
		say "building $name"
		go build -trimpath -o "$WORK/$name" "$pkg"
	fi
}
tool vitlens ./server
tool synth ./tools/bench/synth
vitlens=$WORK/vitlens

command -v nvidia-smi >/dev/null && say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true)"
small=() what="ViT-B/16"
[ "$SMALL" = 1 ] && small=(-small) what="small dry-run model (B/16 layout, patch 32, dim 64, depth 2)"
say "synthetic inputs: $IMAGES images, $what with splitmix weights"
out=$("$WORK/synth" -out "$WORK" -images "$IMAGES" "${small[@]}")
echo "$out"
model=$(echo "$out" | tail -1)

say "vitlens bench --backend gpu --batches $BATCHES --reps $REPS"
flags=()
[ "$F16" = 1 ] && flags+=(--gpu-f16 --f16-images 4)
[ "$SMALL" = 1 ] && flags+=(--no-b16)
"$vitlens" bench --backend gpu --batches "$BATCHES" --reps "$REPS" "${flags[@]}" 2>&1 | tee "$WORK/bench.txt"
adapter=$(grep -m1 '^device:' "$WORK/bench.txt" | sed 's/^device: //')
say "adapter: $adapter"

extract() { # extract N images; prints vitlens's summary line
	rm -rf "$WORK/extract"
	"$vitlens" extract --model "$model" --preset google --data folder \
		--root "$WORK/images" --limit "$1" --backend gpu --batch "$BATCH" --chunk "$CHUNK" \
		--out "$WORK/extract" --quiet 2>"$WORK/extract.log" || { cat "$WORK/extract.log" >&2; exit 1; }
}
rate() { sed -n 's/.*(\([0-9.]*\) img\/s).*/\1/p'; }
tenth=$(((IMAGES + 9) / 10))
say "extract, a tenth first: $tenth images, batch $BATCH, all four sites"
line=$(extract "$tenth")
echo "$line"
r=$(echo "$line" | rate)
left=$((BUDGET - $(elapsed)))
need=$(awk -v n="$IMAGES" -v r="$r" 'BEGIN { printf "%d", (r > 0 ? n / r : 1e9) + 15 }')
if [ "$tenth" -lt "$IMAGES" ] && [ "$need" -le "$left" ]; then
	say "extract, all $IMAGES images (about $need s of the $left s left)"
	line=$(extract "$IMAGES")
	echo "$line"
	r=$(echo "$line" | rate)
	n=$IMAGES
else
	n=$tenth
	[ "$tenth" -lt "$IMAGES" ] && say "the full extract would take about $need s, over the $left s left: measured on $tenth images only"
fi

# The lens's share: B/16's profile at the largest batch (the last "lens:" line).
share=$(grep '^lens:' "$WORK/bench.txt" | tail -1 | sed 's/^lens: //')
echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), $(elapsed) s in all)"
echo "adapter:  $adapter"
echo "extract:  $n synthetic 224x224 images, $what, sites hs,hs_mid,attn,mlp, batch $BATCH: $r images/s"
echo "lens:     $share (the last model profiled, batch ${BATCHES##*,}, from the bench profile)"
grep -E '^(fp32 peak|per-op times)' "$WORK/bench.txt" | sort -u | sed 's/^/bench:    /'
