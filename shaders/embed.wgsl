// Block-0 input: [CLS] or patch embedding plus position embedding, gathered at
// the kept positions (token dropping happens here, after the position
// embeddings as in vit.Model.Forward). keep holds, per image and sequence
// position, the original token index; without dropping it is 0..T-1.

struct Params {
    batch: u32,
    n: u32,       // kept tokens per image
    d: u32,
    patches: u32, // patches per image
    has_cls: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> patch_out: array<f32>; // batch×patches×D
@group(0) @binding(2) var<storage, read> cls_token: array<f32>; // D (unused without [CLS])
@group(0) @binding(3) var<storage, read> pos: array<f32>;       // T×D
@group(0) @binding(4) var<storage, read> keep: array<u32>;      // batch×n
@group(0) @binding(5) var<storage, read_write> x: array<f32>;   // batch×n×D

const WG: u32 = 256u; // invocations per workgroup, one element each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    if (i >= p.batch * p.n * p.d) {
        return;
    }
    let j = i % p.d;
    let row = i / p.d; // b·n + position
    let b = row / p.n;
    let tok = keep[row];
    var v: f32;
    if (p.has_cls != 0u && tok == 0u) {
        v = cls_token[j];
    } else {
        v = patch_out[(b * p.patches + tok - p.has_cls) * p.d + j];
    }
    x[i] = v + pos[tok * p.d + j];
}
