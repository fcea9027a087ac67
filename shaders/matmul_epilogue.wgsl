// The parameter block, the bias and output bindings and the epilogue that
// every matmul variant shares (matmul.wgsl and the tiled ones): bias, the
// exact GELU (fc1) and accumulation into out (a residual add with no extra
// pass). A kernel declares its operand bindings a (1) and w (2) before
// including this file, so the bindings read in order.

//#include erf.wgsl

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32, // FLAG_* below
}

const FLAG_BIAS: u32 = 1u;
const FLAG_GELU: u32 = 2u;
const FLAG_ACCUMULATE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// store_row writes acc as out[row][col0..col0+3] through the epilogue,
// skipping what lies outside the m×n output.
fn store_row(row: u32, col0: u32, acc: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var c = 0u; c < 4u; c++) {
        let col = col0 + c;
        if (col < p.n) {
            let idx = row * p.n + col;
            var v = acc[c];
            if ((p.flags & FLAG_BIAS) != 0u) {
                v += bias[col];
            }
            if ((p.flags & FLAG_ACCUMULATE) != 0u) {
                v = out[idx] + v;
            }
            if ((p.flags & FLAG_GELU) != 0u) {
                v = gelu_erf(v);
            }
            out[idx] = v;
        }
    }
}
