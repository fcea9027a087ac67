// The f16-weight twin of matmul_64x64.wgsl: weights stored as packed halves
// (matmul_weights_f16.wgsl), f32 arithmetic; same tile.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

//#include matmul_weights_f16.wgsl
//#include matmul_tiled.wgsl

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    tiled_matmul(wid, lid, li);
}
