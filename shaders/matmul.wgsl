// out (m×n) = a (m×k) · wᵀ + bias, w being n×k like a PyTorch Linear weight,
// as vit.LinearForward. Optional epilogues: accumulate into out (a residual
// add with no extra pass) and the exact GELU (fc1).
//
// The simple variant: any m, n, k, weights as PyTorch stores them. It runs
// the layers whose k is not a multiple of 4 and the head (whose weights the
// lens kernel reads in this layout), and is the twin the tiled variants
// (matmul_tiled.wgsl) are checked beside.
//
// Tiling: a 16×16 workgroup computes a 64×64 output tile; each invocation a
// 4×4 block held in four vec4 registers. Tiles of 16 along k are staged in
// workgroup memory transposed (k-major, vec4-packed) so the inner loop does
// two vec4 loads per 16 multiply-adds. Global loads are coalesced along k.
// Workgroup memory: 2 × 16 × 64 floats = 8 KiB.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;

//#include matmul_epilogue.wgsl

// Output tile of one workgroup (BM rows × BN columns) and the k step. The
// host reads BM and BN for its dispatch sizes; the invocation layout below
// (16×16, 4×4 outputs each) assumes BM = BN = 64.
const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

const A_TILE: u32 = BK * BM / 4u; // the bundled WGSL parser wants a name as an array size
const W_TILE: u32 = BK * BN / 4u;

var<workgroup> a_tile: array<vec4<f32>, A_TILE>; // [k][row/4]
var<workgroup> w_tile: array<vec4<f32>, W_TILE>; // [k][col/4]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let kk = li % BK; // this invocation's k within a tile when loading
    let lr = li / BK; // and its first row (of four, 16 apart)
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let kg = k0 + kk;
        for (var j = 0u; j < 4u; j++) {
            let r = lr + 16u * j;
            var av = 0.0;
            var wv = 0.0;
            if (kg < p.k) {
                if (row0 + r < p.m) {
                    av = a[(row0 + r) * p.k + kg];
                }
                if (col0 + r < p.n) {
                    wv = w[(col0 + r) * p.k + kg];
                }
            }
            a_tile[kk * 16u + r / 4u][r % 4u] = av;
            w_tile[kk * 16u + r / 4u][r % 4u] = wv;
        }
        workgroupBarrier();
        for (var q = 0u; q < BK; q++) {
            let av = a_tile[q * 16u + lid.y];
            let wv = w_tile[q * 16u + lid.x];
            acc0 += av.x * wv;
            acc1 += av.y * wv;
            acc2 += av.z * wv;
            acc3 += av.w * wv;
        }
        workgroupBarrier();
    }
    let r = row0 + lid.y * 4u;
    let c = col0 + lid.x * 4u;
    store_row(r, c, acc0);
    store_row(r + 1u, c, acc1);
    store_row(r + 2u, c, acc2);
    store_row(r + 3u, c, acc3);
}
