//go:build !linux

package pluginhost

import "os/exec"

// setParentDeathSignal is a no-op where the OS has no parent-death signal:
// plugins are still killed by Host.Close, but not on a host SIGKILL.
func setParentDeathSignal(*exec.Cmd) {}

// parentDeathSignal reports whether plugins die with the host on this OS.
const parentDeathSignal = false
