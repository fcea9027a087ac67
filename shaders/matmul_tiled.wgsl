// The tiled matmul variants' body: out (m×n) = a (m×k) · wᵀ + bias with the
// epilogues of matmul_epilogue.wgsl, for k a multiple of 4 and weights laid
// out k-major at upload: wt[k][n4], n4 = n rounded up to a multiple of 4 and
// zero-padded, so a row of a weight tile is contiguous and both operands load
// as vec4 (the host checks k and the layout before choosing a tiled variant).
//
// A variant file declares its tile (BM×BN outputs per workgroup, BK along k)
// and includes this one. A 16×16 workgroup computes the tile; each
// invocation a TM×TN block (TM = BM/16, TN = BN/16) whose rows are 4
// consecutive, then 64 apart (and likewise columns), so that the vec4 reads
// of workgroup memory by neighbouring invocations are contiguous. Tiles are
// double-buffered: the global loads of tile t+1 are issued before the
// multiply-adds of tile t and stored after them into the other half, with one
// barrier per tile.

// A variant file includes, before this one, how it stores the weights
// (binding 2, k×n4 k-major): matmul_weights_f32.wgsl or, for the f16-weight
// twins, matmul_weights_f16.wgsl; either gives load_w(i), the i-th vec4.
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>; // m×k, row-major

//#include matmul_epilogue.wgsl

const WG: u32 = 256u;             // invocations (16×16)
const TM: u32 = BM / 16u;         // output rows per invocation (a multiple of 4)
const TN: u32 = BN / 16u;         // output columns per invocation (a multiple of 4)
const TM4: u32 = TM / 4u;
const TN4: u32 = TN / 4u;
const ACC: u32 = TM * TN4;        // vec4 accumulators per invocation
const A_TILE: u32 = BK * BM / 4u; // vec4s per buffered tile, [k][row/4]
const W_TILE: u32 = BK * BN / 4u; // [k][col/4]
const A_BUFS: u32 = 2u * A_TILE;
const W_BUFS: u32 = 2u * W_TILE;
const A_LOADS: u32 = (A_TILE + WG - 1u) / WG; // vec4 global loads per invocation per tile
const W_LOADS: u32 = (W_TILE + WG - 1u) / WG;

var<workgroup> a_tile: array<vec4<f32>, A_BUFS>;
var<workgroup> w_tile: array<vec4<f32>, W_BUFS>;

// The global loads of one tile, held in registers between the fetch and the
// store to workgroup memory.
var<private> a_reg: array<vec4<f32>, A_LOADS>;
var<private> w_reg: array<vec4<f32>, W_LOADS>;

// fetch loads tile k0 of the a rows at row0 and the w columns at col0 into
// registers, zero past the matrices' edges. A vec4 of a is 4 consecutive k
// in one row (k is a multiple of 4, so it lies wholly inside or outside).
fn fetch(row0: u32, col0: u32, k0: u32, li: u32) {
    let n4 = (p.n + 3u) / 4u * 4u;
    for (var s = 0u; s < A_LOADS; s++) {
        let i = li + s * WG;
        let r = i / (BK / 4u);
        let kg = k0 + (i % (BK / 4u)) * 4u;
        var v = vec4<f32>(0.0);
        if (i < A_TILE && row0 + r < p.m && kg < p.k) {
            v = a[((row0 + r) * p.k + kg) / 4u];
        }
        a_reg[s] = v;
    }
    for (var s = 0u; s < W_LOADS; s++) {
        let i = li + s * WG;
        let kg = k0 + i / (BN / 4u);
        let col = col0 + (i % (BN / 4u)) * 4u;
        var v = vec4<f32>(0.0);
        if (i < W_TILE && kg < p.k && col < n4) {
            v = load_w((kg * n4 + col) / 4u);
        }
        w_reg[s] = v;
    }
}

// stage stores the fetched tile into half h of the workgroup tiles, a
// transposed to [k][row/4].
fn stage(h: u32, li: u32) {
    for (var s = 0u; s < A_LOADS; s++) {
        let i = li + s * WG;
        if (i < A_TILE) {
            let r = i / (BK / 4u);
            let kq = (i % (BK / 4u)) * 4u;
            let v = a_reg[s];
            for (var e = 0u; e < 4u; e++) {
                a_tile[h * A_TILE + (kq + e) * (BM / 4u) + r / 4u][r % 4u] = v[e];
            }
        }
    }
    for (var s = 0u; s < W_LOADS; s++) {
        let i = li + s * WG;
        if (i < W_TILE) {
            w_tile[h * W_TILE + i] = w_reg[s];
        }
    }
}

fn tiled_matmul(wid: vec3<u32>, lid: vec3<u32>, li: u32) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    var acc: array<vec4<f32>, ACC>; // [row in block][column group]
    var av: array<vec4<f32>, TM4>;
    var wv: array<vec4<f32>, TN4>;
    let tiles = (p.k + BK - 1u) / BK;
    fetch(row0, col0, 0u, li);
    stage(0u, li);
    workgroupBarrier();
    for (var t = 0u; t < tiles; t++) {
        let h = t % 2u;
        let more = t + 1u < tiles;
        if (more) {
            fetch(row0, col0, (t + 1u) * BK, li);
        }
        for (var q = 0u; q < BK; q++) {
            for (var i = 0u; i < TM4; i++) {
                av[i] = a_tile[h * A_TILE + q * (BM / 4u) + lid.y + 16u * i];
            }
            for (var j = 0u; j < TN4; j++) {
                wv[j] = w_tile[h * W_TILE + q * (BN / 4u) + lid.x + 16u * j];
            }
            for (var i = 0u; i < TM4; i++) {
                for (var r = 0u; r < 4u; r++) {
                    for (var j = 0u; j < TN4; j++) {
                        acc[(i * 4u + r) * TN4 + j] += av[i][r] * wv[j];
                    }
                }
            }
        }
        if (more) {
            stage(1u - h, li);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM4; i++) {
        for (var r = 0u; r < 4u; r++) {
            let row = row0 + lid.y * 4u + 64u * i + r;
            for (var j = 0u; j < TN4; j++) {
                store_row(row, col0 + lid.x * 4u + 64u * j, acc[(i * 4u + r) * TN4 + j]);
            }
        }
    }
}
