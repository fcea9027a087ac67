// The scale of zero-shot CLIP's embedding normalisation (vit.EmbedNorm):
// s[r] = 1/‖e_r‖ for rows embeddings of width e, written at out[off + r].
// One invocation per row, summing in order.

struct Params {
    rows: u32,
    e: u32,
    off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> emb: array<f32>;         // rows×e
@group(0) @binding(2) var<storage, read_write> out: array<f32>;   // scales at off..

const WG: u32 = 256u; // invocations per workgroup, one row each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let r = (wid.y * nwg.x + wid.x) * WG + li;
    if (r >= p.rows) {
        return;
    }
    var ss = 0.0;
    for (var i = 0u; i < p.e; i++) {
        let v = emb[r * p.e + i];
        ss += v * v;
    }
    out[p.off + r] = 1.0 / sqrt(ss);
}
