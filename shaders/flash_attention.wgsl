// Multi-head self-attention up to the output projection, as vit.Attention
// (scores q·kᵀ/√dh, softmax, the post-softmax edits self_only and no_cls,
// the weighted sum of values), fused in the way of FlashAttention: per block
// of queries, an online softmax over blocks of keys, so the score matrix is
// never written to memory and workgroup memory does not grow with the
// sequence (197, 577 and 1,370 tokens alike). It writes no probabilities:
// a tapped run uses attention.wgsl, its twin in the kernel tests.
//
// One invocation per query: its query and its output accumulator are held
// in registers (dh ≤ 64), so scores need no reduction across invocations and
// the only barriers are the two around each block of keys and values staged
// in workgroup memory, which every query of the workgroup reads in the same
// order (broadcast reads). Per block: TK scores into registers, one rescale
// of the accumulator by exp(m_old − m_new), then TK value updates.
// Workgroup memory: keys + values, 2 × TK × SLOTS vec4 = 16 KiB.

//#include attention_common.wgsl

@group(0) @binding(3) var<storage, read_write> out: array<f32>; // batch×n×D

// Queries per workgroup (one per invocation; the host reads it for its
// dispatch size), keys per block, and vec4 slots per head vector: the host
// sends wider heads to attention.wgsl.
const TQ: u32 = 64u;
const TK: u32 = 32u;
const SLOTS: u32 = 16u; // dh ≤ 64

const KV_TILE: u32 = TK * SLOTS; // the bundled WGSL parser wants a name as an array size

var<workgroup> k_tile: array<vec4<f32>, KV_TILE>; // [key][slot]
var<workgroup> v_tile: array<vec4<f32>, KV_TILE>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let b = wid.z;
    let h = wid.y;
    let t = wid.x * TQ + li; // this invocation's query (past n: loads and computes, writes nothing)
    let d = p.heads * p.dh;
    let slots = (p.dh + 3u) / 4u;
    let cls = cls_pos[b];
    let edited = p.edit != 0u && i32(t) != cls; // edits leave the [CLS] row alone
    let skip_cls = edited && p.edit == EDIT_NO_CLS;

    var q: array<vec4<f32>, SLOTS>;
    var acc: array<vec4<f32>, SLOTS>;
    for (var c = 0u; c < SLOTS; c++) {
        if (c < slots) {
            q[c] = load4(b, t, h * p.dh, c);
        }
    }
    var s: array<f32, TK>;
    var m = NEG; // running max of this query's scores
    var l = 0.0; // running sum of exp(score − m), [CLS] included even under no_cls
    for (var k0 = 0u; k0 < p.n; k0 += TK) {
        workgroupBarrier(); // the previous block is consumed
        for (var i = li; i < TK * slots; i += TQ) {
            let j = i / slots;
            let c = i % slots;
            k_tile[j * SLOTS + c] = load4(b, k0 + j, d + h * p.dh, c);
            v_tile[j * SLOTS + c] = load4(b, k0 + j, 2u * d + h * p.dh, c);
        }
        workgroupBarrier();
        let keys = min(TK, p.n - k0);
        var mt = m;
        for (var j = 0u; j < TK; j++) {
            var sj = NEG;
            if (j < keys) {
                var dotp = 0.0;
                for (var c = 0u; c < SLOTS; c++) {
                    if (c < slots) {
                        dotp += dot(q[c], k_tile[j * SLOTS + c]);
                    }
                }
                sj = dotp * p.scale;
            }
            s[j] = sj;
            mt = max(mt, sj);
        }
        let corr = exp(m - mt);
        m = mt;
        l *= corr;
        for (var c = 0u; c < SLOTS; c++) {
            acc[c] *= corr;
        }
        for (var j = 0u; j < TK; j++) {
            if (j >= keys) {
                break;
            }
            let e = exp(s[j] - m);
            l += e;
            if (skip_cls && i32(k0 + j) == cls) {
                continue;
            }
            for (var c = 0u; c < SLOTS; c++) {
                if (c < slots) {
                    acc[c] += e * v_tile[j * SLOTS + c];
                }
            }
        }
    }

    if (t >= p.n) {
        return;
    }
    let inv = 1.0 / l;
    let base = (b * p.n + t) * d + h * p.dh;
    for (var c = 0u; c < slots; c++) {
        var v = acc[c] * inv;
        if (edited && p.edit == EDIT_SELF_ONLY) {
            v = load4(b, t, 2u * d + h * p.dh, c); // the row is one-hot at t
        }
        for (var e = 0u; e < 4u; e++) {
            if (c * 4u + e < p.dh) {
                out[base + c * 4u + e] = v[e];
            }
        }
    }
}
