// Resolves "the model's own prediction" targets: a negative entry becomes the
// argmax of that image's logits, the first index on ties (like lens's CPU
// backend), before the lens kernel reads the targets.

struct Params {
    batch: u32,
    classes: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;        // batch×C
@group(0) @binding(2) var<storage, read_write> targets: array<i32>; // batch

const WG: u32 = 64u; // images per workgroup, one invocation each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= p.batch || targets[b] >= 0) {
        return;
    }
    let row = b * p.classes;
    var best = 0u;
    for (var c = 1u; c < p.classes; c++) {
        if (logits[row + c] > logits[row + best]) {
            best = c;
        }
    }
    targets[b] = i32(best);
}
