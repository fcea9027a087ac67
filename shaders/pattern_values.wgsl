// The attention heads from a (patched) attention pattern, as
// vit.HeadsFromPattern: z[t, h, :] = Σ_s pattern[h, t, s]·v[s, h, :], per
// image. It runs after attention.wgsl wrote the pattern and the pattern was
// patched (patch.wgsl), so what follows the pattern sees the patch; the
// pattern holds any attention edit already.

struct Params {
    batch: u32,
    n: u32,
    heads: u32,
    dh: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;          // batch×n×3D, rows q|k|v
@group(0) @binding(2) var<storage, read> probs: array<f32>;        // batch×H×n×n
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // batch×n×D

const WG: u32 = 256u; // invocations per workgroup, one output each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    let d = p.heads * p.dh;
    if (i >= p.batch * p.n * d) {
        return;
    }
    let b = i / (p.n * d);
    let t = (i / d) % p.n;
    let h = (i % d) / p.dh;
    let c = i % p.dh;
    let row = ((b * p.heads + h) * p.n + t) * p.n;
    let v0 = b * p.n * 3u * d + 2u * d + h * p.dh + c;
    var s = 0.0;
    for (var k = 0u; k < p.n; k++) {
        s += probs[row + k] * qkv[v0 + k * 3u * d];
    }
    out[i] = s;
}
