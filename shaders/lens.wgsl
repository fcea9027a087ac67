// The lens readout, fused: for each row h (a hidden vector of one token at one
// site and block) compute the logits E·LN_final(h) + β with fresh LN
// statistics, and keep only the target class's rank and logit, the top-k
// classes, the entropy of softmax(logits) and the KL divergence to the last
// block's distribution of the same token. The C logits never leave workgroup
// memory, except in the reference mode below.
//
// A workgroup owns 32 rows. Prologue: per-row mean and 1/σ (8 invocations per
// row), target, and target logit. Then classes stream through in tiles of 64:
// a register-blocked matmul (2 rows × 4 classes per invocation, vec4
// accumulators) with the LayerNorm applied while staging the rows, the tile of
// logits goes to workgroup memory, and one invocation per row updates that
// row's rank count, top-k list and running softmax sums in class order, so
// ties resolve like lens.Rank and lens.TopK (lower class index first), while
// the 8 invocations of each row add up its KL terms.
// Workgroup memory: 2 + 4 + 8 KiB tiles + row statistics, under 16 KiB.
//
// Two modes. The reference mode runs first, over the last block's hs: it
// writes each row's logits and log-sum-exp to the reference section of aux
// (rows×C, then rows), the distribution every readout of that token is
// compared with. The readout mode reads them back per class: with p the
// reference and q this row's distribution, z their logits and L their
// log-sum-exps,
//   KL(p ‖ q) = Σ p·(log p − log q) = Σ p·(z_p − z_q) − (Σ p)·(L_p − L_q),
// so a row equal to the reference's gives exactly 0, as the CPU does.
// Entropy −Σ q·log q = log s − t/s, with s = Σ e^(z−m) and t = Σ e^(z−m)·(z−m)
// kept relative to the running maximum m. Both in nats, as lens.EntropyKL.
// With p.unit the logits are rescaled per row first (a head file with
// "normalize": "true", vit.EmbedNorm), in both modes, so KL compares the
// normalised distributions as the CPU does.
//
// Output per row (stride OUT_HEAD + k u32): rank, bitcast(target logit),
// bitcast(entropy), bitcast(KL), top-k classes. The reference mode writes no
// output rows.

struct Params {
    rows: u32,
    d: u32,
    classes: u32,
    k: u32,       // top-k, at most KMAX
    n: u32,       // tokens per image: row r belongs to image (r / n) % batch
    batch: u32,
    eps: f32,
    out_row0: u32, // first output row written by this dispatch
    unit: u32,     // 1: rescale as zero-shot CLIP's embedding normalisation (aux from 0)
    mode: u32,     // MODE_READOUT or MODE_REFERENCE
    ref_off: u32,  // words of aux before the reference section
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> h: array<f32>;        // rows×D
@group(0) @binding(2) var<storage, read> norm_w: array<f32>;   // D
@group(0) @binding(3) var<storage, read> norm_b: array<f32>;   // D
@group(0) @binding(4) var<storage, read> head_w: array<f32>;   // C×D
@group(0) @binding(5) var<storage, read> head_b: array<f32>;   // C
@group(0) @binding(6) var<storage, read> targets: array<i32>;  // batch, already resolved
@group(0) @binding(7) var<storage, read_write> out: array<u32>;
// One buffer for two sections (a browser allows 8 storage buffers per stage):
// with p.unit, from 0, the head file's bias b (classes), then s_r = 1/‖e_r‖
// per row of this dispatch (rownorm.wgsl), logit = (logit − b)·s_r + b
// (vit.EmbedNorm); from p.ref_off the reference, the logits of the n·batch
// tokens of the last block's hs (n·batch × C), then their log-sum-exps
// (n·batch). Row r is token r % (n·batch).
@group(0) @binding(8) var<storage, read_write> aux: array<f32>;

// Rows per workgroup (the host reads it for its dispatch size), classes per
// tile, the k step, and the longest top-k list a row keeps (the host refuses
// longer ones).
const TR: u32 = 32u;
const TC: u32 = 64u;
const BK: u32 = 16u;
const KMAX: u32 = 16u;
// Words of an output row before its top-k list.
const OUT_HEAD: u32 = 4u;
// Invocations per workgroup (16×16): 8 per row.
const LANES: u32 = TR * 8u;
const MODE_READOUT: u32 = 0u;
const MODE_REFERENCE: u32 = 1u;

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

// sum8 adds the 8 partial sums of row pr staged in lg from off (serially,
// deterministic).
fn sum8(off: u32, pr: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < 8u; i++) {
        s += lg[off + pr * 8u + i];
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
            let cb = aux[u32(cls)];
            if (ra < p.rows) {
                v0 = (v0 - cb) * aux[p.classes + ra] + cb;
            }
            if (ra + 1u < p.rows) {
                v1 = (v1 - cb) * aux[p.classes + ra + 1u] + cb;
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
        mean_s[pr] = sum8(0u, pr) / f32(d);
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
        inv_s[pr] = 1.0 / sqrt(sum8(0u, pr) / f32(d) + p.eps);
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

    // Class tiles. The row invocation (li < TR) keeps rank, top-k and the
    // softmax sums of row li, starting from its target logit as the running
    // maximum; invocation li also adds up, as part li % 8 of row li / 8, the
    // KL sums Σ p·(z_p − z_q) and Σ p over every 8th class of each tile.
    let tok = grow % (p.n * p.batch);
    var lse_ref = 0.0;
    if (p.mode == MODE_READOUT) {
        lse_ref = lse_ref_of(grow);
    }
    var kl_sum = 0.0;
    var p_sum = 0.0;
    var rank = 0u;
    var cnt = 0u;
    var topv: array<f32, KMAX>;
    var topi: array<i32, KMAX>;
    var mx = 0.0;
    var se = 0.0;
    var te = 0.0;
    if (li < TR) {
        mx = tl_s[li];
    }
    for (var c0 = 0u; c0 < p.classes; c0 += TC) {
        tile_logits(r0, c0, false, lid, li);
        let end = min(TC, p.classes - c0);
        if (p.mode == MODE_REFERENCE) {
            for (var i = li; i < TR * TC; i += LANES) {
                let r = i / TC;
                let c = i % TC;
                if (r0 + r < p.rows && c < end) {
                    aux[p.ref_off + (r0 + r) * p.classes + c0 + c] = lg[i];
                }
            }
        } else if (valid) {
            for (var c = part; c < end; c += 8u) {
                let zp = aux[p.ref_off + tok * p.classes + c0 + c];
                let pk = exp(zp - lse_ref);
                p_sum += pk;
                kl_sum += pk * (zp - lg[pr * TC + c]);
            }
        }
        if (li < TR && r0 + li < p.rows) {
            let tcls = u32(tgt_s[li]);
            let tl = tl_s[li];
            for (var c = 0u; c < end; c++) {
                let x = lg[li * TC + c];
                let cls = c0 + c;
                if (cls != tcls && x > tl) {
                    rank++;
                }
                if (x > mx) {
                    let f = exp(mx - x);
                    te = f * (te + (mx - x) * se);
                    se *= f;
                    mx = x;
                }
                let e = exp(x - mx);
                se += e;
                te += e * (x - mx);
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
    lg[li] = kl_sum;
    lg[LANES + li] = p_sum;
    workgroupBarrier();

    if (li < TR && r0 + li < p.rows) {
        let lse = mx + log(se);
        if (p.mode == MODE_REFERENCE) {
            aux[p.ref_off + p.n * p.batch * p.classes + r0 + li] = lse;
            return;
        }
        let kl = max(sum8(0u, li) - sum8(LANES, li) * (lse_ref_of(r0 + li) - lse), 0.0);
        let base = (p.out_row0 + r0 + li) * (p.k + OUT_HEAD);
        out[base] = rank;
        out[base + 1u] = bitcast<u32>(tl_s[li]);
        out[base + 2u] = bitcast<u32>(log(se) - te / se);
        out[base + 3u] = bitcast<u32>(kl);
        for (var i = 0u; i < p.k; i++) {
            var c = -1;
            if (i < cnt) {
                c = topi[i];
            }
            out[base + OUT_HEAD + i] = bitcast<u32>(c);
        }
    }
}

// lse_ref_of is the reference log-sum-exp of row r's token.
fn lse_ref_of(r: u32) -> f32 {
    let tokens = p.n * p.batch;
    return aux[p.ref_off + tokens * p.classes + r % tokens];
}
