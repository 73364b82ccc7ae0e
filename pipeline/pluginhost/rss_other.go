//go:build !linux

package pluginhost

// residentBytes is not measured outside Linux: max_rss is not checked.
func residentBytes(pid int) (int64, bool) { return 0, false }
