// The tiled matmuls' weights stored as f32: load_w(i) is the i-th vec4.

@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>; // k×n4, k-major

fn load_w(i: u32) -> vec4<f32> {
    return w[i];
}
