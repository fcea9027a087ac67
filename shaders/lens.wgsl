// The lens readout, fused: for each row h (a hidden vector of one token at one
// site and block) compute the logits E·LN_final(h) + β with fresh LN
// statistics, and keep only the target class's rank and logit and the top-k
// classes. The C logits never leave workgroup memory.
//
// A workgroup owns 32 rows. Prologue: per-row mean and 1/σ (8 invocations per
// row), target, and target logit. Then classes stream through in tiles of 64:
// a register-blocked matmul (2 rows × 4 classes per invocation, vec4
// accumulators) with the LayerNorm applied while staging the rows, the tile of
// logits goes to workgroup memory, and one invocation per row updates that
// row's rank count and top-k list in class order, so ties resolve like
// lens.Rank and lens.TopK (lower class index first).
// Workgroup memory: 2 + 4 + 8 KiB tiles + row statistics, under 16 KiB.
//
// Output per row (stride k+2 u32): rank, bitcast(target logit), top-k classes.
// With p.unit the logits are rescaled per row first (a head file with
// "normalize": "true", vit.EmbedNorm).

struct Params {
    rows: u32,
    d: u32,
    classes: u32,
    k: u32,       // top-k, at most KMAX
    n: u32,       // tokens per image: row r belongs to image (r / n) % batch
    batch: u32,
    eps: f32,
    out_row0: u32, // first output row written by this dispatch
    unit: u32,     // 1: rescale as zero-shot CLIP's embedding normalisation (unit_buf)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> h: array<f32>;        // rows×D
@group(0) @binding(2) var<storage, read> norm_w: array<f32>;   // D
@group(0) @binding(3) var<storage, read> norm_b: array<f32>;   // D
@group(0) @binding(4) var<storage, read> head_w: array<f32>;   // C×D
@group(0) @binding(5) var<storage, read> head_b: array<f32>;   // C
@group(0) @binding(6) var<storage, read> targets: array<i32>;  // batch, already resolved
@group(0) @binding(7) var<storage, read_write> out: array<u32>;
// With p.unit: the head file's bias b (classes), then s_r = 1/‖e_r‖ per row of
// this dispatch (rownorm.wgsl); logit = (logit − b)·s_r + b (vit.EmbedNorm).
@group(0) @binding(8) var<storage, read> unit_buf: array<f32>;

// Rows per workgroup (the host reads it for its dispatch size), classes per
// tile, the k step, and the longest top-k list a row keeps (the host refuses
// longer ones).
const TR: u32 = 32u;
const TC: u32 = 64u;
const BK: u32 = 16u;
const KMAX: u32 = 16u;

const A_TILE: u32 = BK * TR / 2u; // the bundled WGSL parser wants a name as an array size
const W_TILE: u32 = BK * TC / 4u;
const LG_TILE: u32 = TR * TC;

var<workgroup> a_tile: array<vec2<f32>, A_TILE>; // [k][row/2]
var<workgroup> w_tile: array<vec4<f32>, W_TILE>; // [k][class/4]
var<workgroup> lg: array<f32, LG_TILE>;       // TR × TC logits; prologue scratch
var<workgroup> mean_s: array<f32, TR>;
var<workgroup> inv_s: array<f32, TR>;
var<workgroup> tl_s: array<f32, TR>;
var<workgroup> tgt_s: array<i32, TR>;

// sum8 adds the 8 partial sums of row pr staged in lg (serially, deterministic).
fn sum8(pr: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < 8u; i++) {
        s += lg[pr * 8u + i];
    }
    return s;
}

// tile_logits fills lg (TR×TC) with the logits of rows r0.. for the classes
// c0.. of one tile, or, when diag, for each row's own target in slot = row.
// Each invocation computes 2 rows × 4 classes in vec4 registers; the rows are
// layer-normalised while being staged.
fn tile_logits(r0: u32, c0: u32, diag: bool, lid: vec3<u32>, li: u32) {
    let d = p.d;
    let kk = li % BK; // this invocation's k within a tile when loading
    let lr = li / BK; // and its first row / class slot
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < d; k0 += BK) {
        let kg = k0 + kk;
        for (var j = 0u; j < 2u; j++) {
            let r = lr + 16u * j;
            var x = 0.0;
            if (r0 + r < p.rows && kg < d) {
                x = (h[(r0 + r) * d + kg] - mean_s[r]) * inv_s[r] * norm_w[kg] + norm_b[kg];
            }
            a_tile[kk * 16u + r / 2u][r % 2u] = x;
        }
        for (var j = 0u; j < 4u; j++) {
            let c = lr + 16u * j;
            let cls = slot_class(c0, c, diag);
            var wv = 0.0;
            if (cls >= 0 && kg < d) {
                wv = head_w[u32(cls) * d + kg];
            }
            w_tile[kk * 16u + c / 4u][c % 4u] = wv;
        }
        workgroupBarrier();
        for (var q = 0u; q < BK; q++) {
            let av = a_tile[q * 16u + lid.y];
            let wv = w_tile[q * 16u + lid.x];
            acc0 += av.x * wv;
            acc1 += av.y * wv;
        }
        workgroupBarrier();
    }
    for (var c = 0u; c < 4u; c++) {
        let col = lid.x * 4u + c;
        let cls = slot_class(c0, col, diag);
        var bias = 0.0;
        if (cls >= 0) {
            bias = head_b[u32(cls)];
        }
        var v0 = acc0[c] + bias;
        var v1 = acc1[c] + bias;
        let ra = r0 + lid.y * 2u;
        if (p.unit != 0u && cls >= 0) {
            let cb = unit_buf[u32(cls)];
            if (ra < p.rows) {
                v0 = (v0 - cb) * unit_buf[p.classes + ra] + cb;
            }
            if (ra + 1u < p.rows) {
                v1 = (v1 - cb) * unit_buf[p.classes + ra + 1u] + cb;
            }
        }
        lg[(lid.y * 2u) * TC + col] = v0;
        lg[(lid.y * 2u + 1u) * TC + col] = v1;
    }
    workgroupBarrier();
}

// slot_class is the class in tile slot c, or -1 past the classes.
fn slot_class(c0: u32, c: u32, diag: bool) -> i32 {
    if (diag) {
        return select(-1, tgt_s[min(c, TR - 1u)], c < TR);
    }
    return select(-1, i32(c0 + c), c0 + c < p.classes);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r0 = (wid.y * nwg.x + wid.x) * TR;
    if (r0 >= p.rows) {
        return;
    }
    let d = p.d;

    // Prologue: statistics, target and target logit of each row.
    let pr = li / 8u;
    let part = li % 8u;
    let grow = r0 + pr;
    let valid = grow < p.rows;
    var s = 0.0;
    if (valid) {
        for (var i = part; i < d; i += 8u) {
            s += h[grow * d + i];
        }
    }
    lg[li] = s;
    workgroupBarrier();
    if (part == 0u) {
        mean_s[pr] = sum8(pr) / f32(d);
    }
    workgroupBarrier();
    let mean = mean_s[pr];
    var v = 0.0;
    if (valid) {
        for (var i = part; i < d; i += 8u) {
            let t = h[grow * d + i] - mean;
            v += t * t;
        }
    }
    workgroupBarrier();
    lg[li] = v;
    workgroupBarrier();
    if (part == 0u) {
        inv_s[pr] = 1.0 / sqrt(sum8(pr) / f32(d) + p.eps);
        var tg = 0;
        if (valid) {
            tg = targets[(grow / p.n) % p.batch];
        }
        tgt_s[pr] = tg;
    }
    workgroupBarrier();
    // The target logits go through the very same tile code as the class
    // stream below, so the target's own logit there is bitwise equal to tl
    // and exact ties rank as lens.Rank ranks them.
    tile_logits(r0, 0u, true, lid, li);
    if (li < TR) {
        tl_s[li] = lg[li * TC + li];
    }
    workgroupBarrier();

    // Class tiles.
    var rank = 0u;
    var cnt = 0u;
    var topv: array<f32, KMAX>;
    var topi: array<i32, KMAX>;
    for (var c0 = 0u; c0 < p.classes; c0 += TC) {
        tile_logits(r0, c0, false, lid, li);
        if (li < TR && r0 + li < p.rows) {
            let tcls = u32(tgt_s[li]);
            let tl = tl_s[li];
            let end = min(TC, p.classes - c0);
            for (var c = 0u; c < end; c++) {
                let x = lg[li * TC + c];
                let cls = c0 + c;
                if (cls != tcls && x > tl) {
                    rank++;
                }
                // Insertion into the sorted top-k list, as lens.TopK.
                if (cnt < p.k) {
                    cnt++;
                } else if (x <= topv[p.k - 1u]) {
                    continue;
                }
                var i = cnt - 1u;
                while (i > 0u && x > topv[i - 1u]) {
                    topv[i] = topv[i - 1u];
                    topi[i] = topi[i - 1u];
                    i--;
                }
                topv[i] = x;
                topi[i] = i32(cls);
            }
        }
        workgroupBarrier();
    }

    if (li < TR && r0 + li < p.rows) {
        let base = (p.out_row0 + r0 + li) * (p.k + 2u);
        out[base] = rank;
        out[base + 1u] = bitcast<u32>(tl_s[li]);
        for (var i = 0u; i < p.k; i++) {
            var c = -1;
            if (i < cnt) {
                c = topi[i];
            }
            out[base + 2u + i] = bitcast<u32>(c);
        }
    }
}
