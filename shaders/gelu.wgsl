// The MLP activation, elementwise in place: exact GELU when fc1 is tapped (so
// the pre-activation values exist on their own; otherwise matmul fuses it),
// and the tanh GELU and CLIP's QuickGELU, which matmul does not fuse.
// Modes 1 and 2 evaluate erf and erfc themselves, for the kernel tests.

//#include erf.wgsl

struct Params {
    count: u32,
    mode: u32, // 0 GELU, 1 erf, 2 erfc, 3 tanh GELU, 4 QuickGELU
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

const WG: u32 = 256u; // invocations per workgroup, one element each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    if (i >= p.count) {
        return;
    }
    let v = x[i];
    switch p.mode {
        case 1u: { x[i] = erf_f32(v); }
        case 2u: { x[i] = erfc_f32(v); }
        case 3u: {
            // 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³), written as
            // x·σ(2u): the same value without 1 + tanh(u) cancelling to 0
            // (all relative precision lost) for large negative x.
            let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
            x[i] = v / (1.0 + exp(-2.0 * u));
        }
        case 4u: { x[i] = v / (1.0 + exp(-1.702 * v)); }
        default: { x[i] = gelu_erf(v); }
    }
}
