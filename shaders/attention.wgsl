// Fused multi-head self-attention up to the output projection, as
// vit.Attention: scores q·kᵀ/√dh, softmax, the optional post-softmax edit
// (self_only: image tokens attend only to themselves; no_cls: image tokens
// stop attending to [CLS], rows not renormalised), and the weighted sum of
// values. Probabilities are written only when tapped.
//
// This kernel runs when the probabilities are tapped and for heads wider
// than flash_attention.wgsl takes; otherwise it is that kernel's twin.
//
// One workgroup handles 16 queries of one head of one image and streams keys
// and values through workgroup memory 8 at a time with an online softmax, so
// no N×N score matrix is ever stored. Each query is served by 8 invocations,
// each owning up to four vec4 slices of the head dimension (dh ≤ 128).
// Workgroup memory: 8 KiB queries + 4 KiB keys/values + 0.5 KiB scores.

//#include attention_common.wgsl

@group(0) @binding(3) var<storage, read_write> out: array<f32>;   // batch×n×D
@group(0) @binding(4) var<storage, read_write> probs: array<f32>; // batch×H×n×n when tapped

// Queries per workgroup (the host reads it for its dispatch size), keys per
// step, and vec4 slots per head vector: the host refuses heads wider than
// 4·SLOTS.
const TQ: u32 = 16u;
const TK: u32 = 8u;
const SLOTS: u32 = 32u; // vec4 slots per head vector (dh ≤ 128)

const Q_TILE: u32 = TQ * SLOTS; // the bundled WGSL parser wants a name as an array size
const KV_TILE: u32 = TK * SLOTS;
const S_TILE: u32 = TQ * TK;

var<workgroup> q_tile: array<vec4<f32>, Q_TILE>;
var<workgroup> kv_tile: array<vec4<f32>, KV_TILE>;
var<workgroup> s_tile: array<f32, S_TILE>;

// load_kv stages keys k0..k0+TK-1 (part 1: K, part 2: V) of this head.
fn load_kv(b: u32, h: u32, k0: u32, part: u32, li: u32, slots: u32) {
    let off = part * p.heads * p.dh + h * p.dh;
    for (var i = li; i < TK * slots; i += 128u) {
        let j = i / slots;
        let c = i % slots;
        kv_tile[j * SLOTS + c] = load4(b, k0 + j, off, c);
    }
}

fn score(qi: u32, j: u32, slots: u32) -> f32 {
    var s = 0.0;
    for (var c = 0u; c < slots; c++) {
        s += dot(q_tile[qi * SLOTS + c], kv_tile[j * SLOTS + c]);
    }
    return s * p.scale;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let b = wid.z;
    let h = wid.y;
    let q0 = wid.x * TQ;
    let d = p.heads * p.dh;
    let slots = (p.dh + 3u) / 4u;
    let cls = cls_pos[b];
    let qi = li / TK;   // query within the tile
    let part = li % TK; // which key (scores) and which head-dim slices (values)
    let t = q0 + qi;
    let edited = p.edit != 0u && i32(t) != cls; // edits leave the [CLS] row alone

    for (var i = li; i < TQ * slots; i += 128u) {
        let qq = i / slots;
        let c = i % slots;
        q_tile[qq * SLOTS + c] = load4(b, q0 + qq, h * p.dh, c);
    }

    var m = NEG; // running max of this query's scores
    var l = 0.0; // running sum of exp(score - m), [CLS] included even under no_cls
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.n; k0 += TK) {
        workgroupBarrier();
        load_kv(b, h, k0, 1u, li, slots);
        workgroupBarrier();
        var s = NEG;
        if (k0 + part < p.n) {
            s = score(qi, part, slots);
        }
        s_tile[qi * TK + part] = s;
        workgroupBarrier();
        load_kv(b, h, k0, 2u, li, slots);
        workgroupBarrier();
        var mt = m;
        for (var j = 0u; j < TK; j++) {
            mt = max(mt, s_tile[qi * TK + j]);
        }
        let corr = exp(m - mt);
        m = mt;
        l *= corr;
        acc0 *= corr;
        acc1 *= corr;
        acc2 *= corr;
        acc3 *= corr;
        for (var j = 0u; j < TK; j++) {
            let key = k0 + j;
            if (key >= p.n) {
                break;
            }
            let e = exp(s_tile[qi * TK + j] - m);
            l += e;
            if (edited && p.edit == EDIT_NO_CLS && i32(key) == cls) {
                continue;
            }
            let row = j * SLOTS + part;
            acc0 += e * kv_tile[row];
            if (part + 8u < slots) {
                acc1 += e * kv_tile[row + 8u];
            }
            if (part + 16u < slots) {
                acc2 += e * kv_tile[row + 16u];
            }
            if (part + 24u < slots) {
                acc3 += e * kv_tile[row + 24u];
            }
        }
    }

    if (t < p.n) {
        let inv = 1.0 / l;
        let base = (b * p.n + t) * d + h * p.dh;
        for (var j = 0u; j < 4u; j++) {
            let c = part + 8u * j;
            var v: vec4<f32>;
            switch j {
                case 0u: { v = acc0; }
                case 1u: { v = acc1; }
                case 2u: { v = acc2; }
                default: { v = acc3; }
            }
            v *= inv;
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

    if (p.write_probs == 0u) {
        return;
    }
    // Second pass for the tap: the final max and sum are known only now.
    let inv = 1.0 / l;
    for (var k0 = 0u; k0 < p.n; k0 += TK) {
        workgroupBarrier();
        load_kv(b, h, k0, 1u, li, slots);
        workgroupBarrier();
        let key = k0 + part;
        if (t < p.n && key < p.n) {
            var pr = exp(score(qi, part, slots) - m) * inv;
            if (edited) {
                if (p.edit == EDIT_SELF_ONLY) {
                    pr = select(0.0, 1.0, key == t);
                } else if (i32(key) == cls) {
                    pr = 0.0;
                }
            }
            probs[((b * p.heads + h) * p.n + t) * p.n + key] = pr;
        }
    }
}
