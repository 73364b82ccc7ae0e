// Package suggest makes the "did you mean" hints of the host's error
// messages (an unknown key, stage id, model or preset) and of the SDK's
// parameter checks. It is internal to this module: a plugin built against
// the sdk writes its own messages.
package suggest

import (
	"fmt"
	"strings"
)

// DidYouMean returns `did you mean "x"?` for the candidate closest to s by
// edit distance (ignoring case), or "" when none is close enough to be a
// plausible typo.
func DidYouMean(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
