// Package client is the host's side of the plugin contract: a [Client]
// calls one plugin process (Describe, Load, the capability calls, Train),
// splitting large batches under the message limits, and turns the plugin's
// errors into errors that wrap [ErrConnection], [ErrInvalid], [ErrPanic] or
// [ErrTooLarge]. [NewClientConfig] and [Dispense] connect go-plugin to it;
// [SharedMemory] is the memory a host shares with a plugin process for
// tensor bytes on Linux.
//
// The host's supervisor (pipeline/pluginhost) and the conformance kit
// (sdk/sdktest) use it; a plugin author does not. The wire protocol both
// sides speak is in sdk/internal/wire.
package client
