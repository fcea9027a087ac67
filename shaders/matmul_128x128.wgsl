// Tiled matmul (see matmul_tiled.wgsl): 128×128 outputs per workgroup,
// 8×8 per invocation, k in steps of 8. Workgroup memory: two buffered
// tiles of 8×(128+128) floats, 16384 bytes (WebGPU's default limit is 16384).

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 8u;

//#include matmul_weights_f32.wgsl
//#include matmul_tiled.wgsl

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    tiled_matmul(wid, lid, li);
}
