// Patch extraction (im2col) for the patch embedding: one row per patch, in
// (channel, y, x) order to match the conv weight flattened to D×(C·P·P). The
// matmul kernel then applies the weight; embed adds [CLS] and positions.

struct Params {
    batch: u32,
    channels: u32,
    side: u32,  // image side in pixels
    psize: u32, // patch side
    grid: u32, // patches per side
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pixels: array<f32>;      // batch×C×S×S
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;  // batch×G²×(C·P·P)

const WG: u32 = 256u; // invocations per workgroup, one element each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    let pp = p.psize * p.psize;
    let row_len = p.channels * pp;
    let patches = p.grid * p.grid;
    if (i >= p.batch * patches * row_len) {
        return;
    }
    let col = i % row_len;
    let row = i / row_len; // b·G² + patch
    let b = row / patches;
    let pi = row % patches;
    let gy = pi / p.grid;
    let gx = pi % p.grid;
    let c = col / pp;
    let y = (col % pp) / p.psize;
    let x = col % p.psize;
    cols[i] = pixels[((b * p.channels + c) * p.side + gy * p.psize + y) * p.side + gx * p.psize + x];
}
