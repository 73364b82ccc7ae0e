package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes ParseSize accepts, longest first.
var sizeUnits = []struct {
	suffix string
	bytes  int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize reads a memory size: a whole number of bytes, or a number with
// a unit: KiB, MiB, GiB, TiB (powers of 1024), KB, MB, GB, TB (of 1000), B.
// "1.5GiB" is allowed; the result must be at least 1 MiB, since a cap
// below what any process needs to start would restart it forever.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.bytes
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a size such as 512MiB, 2GiB or 800MB", s)
	}
	n := int64(v * float64(mult))
	if n < 1<<20 {
		return 0, fmt.Errorf("%q is below 1MiB: no plugin process runs in that", s)
	}
	return n, nil
}
