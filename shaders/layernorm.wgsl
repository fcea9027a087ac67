// LayerNorm of each row with fresh statistics: one workgroup per row, a
// two-pass mean/variance (as vit.LayerNorm, there in float64) reduced in
// workgroup memory. out must not alias x.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

// reduce sums red over the workgroup; every invocation gets the total.
fn reduce(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier(); // red is reused by the next reduction
    return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var s = 0.0;
    for (var i = li; i < p.d; i += WG) {
        s += x[base + i];
    }
    let mean = reduce(li, s) / f32(p.d);
    var v = 0.0;
    for (var i = li; i < p.d; i += WG) {
        let t = x[base + i] - mean;
        v += t * t;
    }
    let inv = 1.0 / sqrt(reduce(li, v) / f32(p.d) + p.eps);
    for (var i = li; i < p.d; i += WG) {
        out[base + i] = (x[base + i] - mean) * inv * w[i] + b[i];
    }
}
