// Residual add in place: dst += src. Used when the sublayer output must also
// exist on its own (tapped, projected by the lens, or post-norm); otherwise the
// matmul epilogue accumulates straight into the residual stream.

struct Params {
    count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const WG: u32 = 256u; // invocations per workgroup, one element each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    if (i < p.count) {
        dst[i] = dst[i] + src[i];
    }
}
