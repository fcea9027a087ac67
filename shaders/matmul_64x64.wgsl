// Tiled matmul (see matmul_tiled.wgsl): 64×64 outputs per workgroup,
// 4×4 per invocation, k in steps of 16. Workgroup memory: two buffered
// tiles of 16×(64+64) floats, 16384 bytes (WebGPU's default limit is 16384).

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

//#include matmul_weights_f32.wgsl
//#include matmul_tiled.wgsl

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    tiled_matmul(wid, lid, li);
}
