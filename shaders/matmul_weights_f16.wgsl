// The tiled matmuls' weights stored as f16, half the memory of f32: two
// halves per u32 (element 2i in the low half, unpack2x16float's .x), so a
// vec4 of weights is one vec2<u32>. Core WGSL: no `enable f16;`, which the
// bundled compiler rejects. The arithmetic stays f32.

@group(0) @binding(2) var<storage, read> w: array<vec2<u32>>; // k×n4 halves, k-major

fn load_w(i: u32) -> vec4<f32> {
    let h = w[i];
    return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}
