package pluginhost

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel SIGKILL the plugin when the thread
// that started it exits, which covers the host being killed with SIGKILL.
// The signal is tied to that OS thread, so plugins are started from a locked
// thread that lives as long as the plugin (see threadRunner).
func setParentDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// parentDeathSignal reports whether plugins die with the host on this OS.
const parentDeathSignal = true
