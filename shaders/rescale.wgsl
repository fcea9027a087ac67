// Zero-shot CLIP's embedding normalisation applied to logits made by the
// composed linear head (vit.Model.NormalizeLogits): with b the head file's
// bias (unit[0..classes)) and s_r = 1/‖e_r‖ (unit[classes + r], rownorm.wgsl),
// logits[r, k] = (logits[r, k] − b_k)·s_r + b_k, in place.

struct Params {
    rows: u32,
    classes: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> unit: array<f32>;          // classes biases, then rows scales
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;  // rows×classes

const WG: u32 = 256u; // invocations per workgroup, one element each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    if (i >= p.rows * p.classes) {
        return;
    }
    let k = i % p.classes;
    let b = unit[k];
    logits[i] = (logits[i] - b) * unit[p.classes + i / p.classes] + b;
}
