// What both attention kernels share (attention.wgsl, which can write the
// probabilities, and flash_attention.wgsl): the parameter block, the qkv and
// [CLS] bindings, the edits and the head-vector loads. A kernel includes this
// file before declaring its outputs (bindings 3 on), so bindings read in order.

struct Params {
    n: u32,       // sequence length
    heads: u32,
    dh: u32,      // head dimension
    batch: u32,
    scale: f32,   // 1/√dh
    edit: u32,    // 0 none, 1 self_only, 2 no_cls
    write_probs: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;     // batch×n×3D, rows q|k|v
@group(0) @binding(2) var<storage, read> cls_pos: array<i32>; // batch: position of [CLS] or -1

const NEG: f32 = -1.0e30;
const EDIT_SELF_ONLY: u32 = 1u;
const EDIT_NO_CLS: u32 = 2u;

// load4 reads slot c (dims 4c..4c+3) of the head vector at column offset off
// of token tok, zero-padded past dh and past the sequence.
fn load4(b: u32, tok: u32, off: u32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (tok < p.n) {
        let base = (b * p.n + tok) * 3u * p.heads * p.dh + off;
        for (var e = 0u; e < 4u; e++) {
            let i = c * 4u + e;
            if (i < p.dh) {
                v[e] = qkv[base + i];
            }
        }
    }
    return v;
}
