// Activation patching in a batch: every image of the batch is the same
// corrupted input with its own site overwritten (vitlens/vit/patching: a
// hook and optionally one head and/or one sequence position), so one batch
// runs many patches. One dispatch per hooked activation, right after the op
// that produces it; each image's row of sel says whether this hook is its
// site, and which head and position.
//
// The activation is rows rows per image in dst, each width values at
// column col_off of a row of row_stride words (q, k and v share qkv's
// rows). mode 0 (token-major: resid, attn_out, z, q, k, v, mlp): row r is
// token r, column j is in head j/head_dim. mode 1 (head-major: the
// attention pattern, H·n rows of n keys): row r is query r%n of head r/n.
// The replacement is one image's activation in the hook's layout
// (vit.Config.HookShape), rows×width words at src_off of src.

struct Params {
    batch: u32,
    rows: u32,       // rows per image
    width: u32,      // values per row
    row_stride: u32, // words between rows in dst
    col_off: u32,    // first column of the activation in a dst row
    head_dim: u32,   // mode 0: columns per head
    n: u32,          // mode 1: tokens (rows per head)
    mode: u32,
    hook: i32,       // this dispatch's hook, as numbered in sel
    src_off: u32,    // words before this hook's replacement in src
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> sel: array<i32>;          // batch×3: hook (-1 none), head, token (-1 all)
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

const WG: u32 = 256u; // invocations per workgroup, one element each (the host reads it)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + li;
    let per = p.rows * p.width;
    if (i >= p.batch * per) {
        return;
    }
    let b = i / per;
    let e = i % per;
    if (sel[3u * b] != p.hook) {
        return;
    }
    let r = e / p.width;
    let j = e % p.width;
    var token = r;
    var head = j / p.head_dim;
    if (p.mode == 1u) {
        token = r % p.n;
        head = r / p.n;
    }
    let want_head = sel[3u * b + 1u];
    let want_token = sel[3u * b + 2u];
    if ((want_head >= 0 && u32(want_head) != head) || (want_token >= 0 && u32(want_token) != token)) {
        return;
    }
    dst[(b * p.rows + r) * p.row_stride + p.col_off + j] = src[p.src_off + e];
}
