// Block-0 input: a prefix token ([CLS], registers) or a patch embedding, plus
// the position embedding, gathered at
// the kept positions (token dropping happens here, after the position
// embeddings as in vit.Model.Forward). keep holds, per image and sequence
// position, the original token index; without dropping it is 0..T-1.

struct Params {
    batch: u32,
    n: u32,       // kept tokens per image
    d: u32,
    patches: u32, // patches per image
    prefix: u32,  // tokens before the patches: [CLS], then registers
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> patch_out: array<f32>; // batch×patches×D
@group(0) @binding(2) var<storage, read> prefix_tokens: array<f32>; // prefix×D (unused without)
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
    if (tok < p.prefix) {
        v = prefix_tokens[tok * p.d + j];
    } else {
        v = patch_out[(b * p.patches + tok - p.prefix) * p.d + j];
    }
    x[i] = v + pos[tok * p.d + j];
}
