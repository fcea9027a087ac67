//go:build !js

package public

import "embed"

// Files holds models/, classes/ and samples/.
//
//go:embed models classes samples
var Files embed.FS
