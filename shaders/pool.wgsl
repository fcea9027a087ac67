// Classifier pooling: one token's row (position `token`: 0 for [CLS], 1 for
// distilled DeiT's distillation token) or the mean over positions, summed in
// sequence order like vit's classify so results round alike.

struct Params {
    batch: u32,
    n: u32,
    d: u32,
    mean: u32, // 0: the row at position token, 1: mean of all positions
    token: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;              // batch×n×D
@group(0) @binding(2) var<storage, read_write> pooled: array<f32>;   // batch×D

const WG: u32 = 256u; // invocations per workgroup, one element each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    if (i >= p.batch * p.d) {
        return;
    }
    let b = i / p.d;
    let j = i % p.d;
    let base = b * p.n * p.d + j;
    if (p.mean == 0u) {
        pooled[i] = x[base + p.token * p.d];
        return;
    }
    var s = 0.0;
    for (var t = 0u; t < p.n; t++) {
        s += x[base + t * p.d];
    }
    pooled[i] = s / f32(p.n);
}
