// Elementwise exact GELU in place (the MLP activation when fc1 is tapped, so
// the pre-activation values exist on their own; otherwise matmul fuses it).
// Modes 1 and 2 evaluate erf and erfc themselves, for the kernel tests.

//#include erf.wgsl

struct Params {
    count: u32,
    mode: u32, // 0 GELU, 1 erf, 2 erfc
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
        default: { x[i] = gelu_erf(v); }
    }
}
