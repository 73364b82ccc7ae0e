// Package wire is the plugin protocol both sides speak: the go-plugin
// handshake and plugin set, the gRPC options and message limits, the tensor
// codec, and the shared-memory data plane (the host's arena and the
// plugin's view of it). Package sdk serves it, package sdk/client calls it;
// the generated messages are in sdk/internal/proto.
//
// wire does not import sdk (sdk imports it, to serve), so it works on the
// wire messages, not on the contract's Go types.
package wire

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// ProtocolVersion is the version of the wire contract in sdk/internal/proto.
// Host and plugin negotiate it through go-plugin's VersionedPlugins; bump it
// (and keep serving the old set) when the proto changes incompatibly.
const ProtocolVersion = 1

// PluginKey is the name under which the model service is registered in the
// go-plugin plugin set.
const PluginKey = "model"

// Message size limits. gRPC's server default (4 MiB) is far below an image
// batch, so both sides set MaxMessageBytes explicitly, and the client splits
// batches so that no request nor expected response exceeds ChunkBytes. The
// gap between the two leaves room for a response larger than estimated.
const (
	MaxMessageBytes = 64 << 20
	ChunkBytes      = 16 << 20
	// WeightsChunkBytes bounds one chunk of weights sent by TrainSession.Save.
	WeightsChunkBytes = 1 << 20
	// MaxGenerateItems caps the items of one Generate call when the output
	// size is not known in advance.
	MaxGenerateItems = 64
)

// Handshake is the go-plugin handshake shared by the host and every plugin.
// The magic cookie is not security: it makes a plugin binary that is run by
// hand say so instead of waiting on stdin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "GENPIPE_PLUGIN",
	MagicCookieValue: "3f1c9a7e-genpipe-model-plugin",
}

// GRPCPlugin adapts the model service to go-plugin. On the plugin side
// Impl is served; on the host side Dispense returns the
// *grpc.ClientConn, which sdk/client wraps.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin side of every call (nil on the host side).
	Impl pb.PluginServer
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the model service; go-plugin calls it in the plugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterPluginServer(s, p.Impl)
	return nil
}

// GRPCClient returns the connection; go-plugin calls it in the host.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// PluginSets returns the versioned plugin sets for go-plugin's
// ClientConfig/ServeConfig.VersionedPlugins. The host passes nil.
func PluginSets(srv pb.PluginServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginKey: &GRPCPlugin{Impl: srv}},
	}
}

// ServerOptions are the gRPC server options every plugin uses: explicit
// message limits (go-plugin's server would otherwise accept 4 MiB).
//
// Flow control is left to gRPC's defaults on purpose: fixed 16 MiB HTTP/2
// windows and 1 MiB socket buffers measured no better on this project's
// benchmarks (pipeline/pluginhost, BenchmarkEmptyCall and
// BenchmarkRGB256x16Copy: differences within run-to-run noise).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	}
}

// DialOptions are the gRPC dial options a host uses for a plugin
// connection: the same message limits as [ServerOptions]. They override
// go-plugin's own (2 GiB) call limits.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		),
	}
}

// Serve serves srv over go-plugin until the host closes the connection,
// then exits the process: the handshake, the plugin set and the server
// options above, logging go-plugin's own lines to log.
func Serve(srv pb.PluginServer, log hclog.Logger) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSets(srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, ServerOptions()...)...)
		},
		Logger: log,
	})
}

// NewServer builds the plugin side of every call for impl, an sdk.Plugin,
// logging to log (nil: a default logger) and taking tensor bytes through
// peer (nil: inline only). Package sdk, which this package cannot import,
// sets it when it is initialised; tests in other packages use it to pair a
// client with a server in one process.
var NewServer func(impl any, log hclog.Logger, peer *Peer) (pb.PluginServer, error)
