//go:build js

package public

import "embed"

// Files holds classes/ only: in the browser the demo model and the samples
// are fetched from /web/demo/ rather than carried inside app.wasm.
//
//go:embed classes
var Files embed.FS
