// Package docs holds the project's documents that the web app shows:
// method.md, what vitlens computes and where it deviates from the original.
package docs

import (
	_ "embed"
	"strings"
)

//go:embed method.md
var Method string

// MethodSection is the section of method.md under the "## " heading that
// starts with title, without the heading; "" when there is none.
func MethodSection(title string) string {
	for _, part := range strings.Split(Method, "\n## ")[1:] {
		if strings.HasPrefix(part, title) {
			_, body, _ := strings.Cut(part, "\n")
			return strings.TrimSpace(body)
		}
	}
	return ""
}
