package sdk

import (
	"context"
	"fmt"
	"os/exec"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// ProtocolVersion is the version of the wire contract in sdk/internal/proto. Host and
// plugin negotiate it through go-plugin's VersionedPlugins; bump it (and keep
// serving the old set) when the proto changes incompatibly.
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

// GRPCPlugin adapts the model service to go-plugin. On the plugin side Impl
// is served; on the host side Dispense returns a *[Client].
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin implementation (nil on the host side).
	Impl Plugin

	server *server // set by Serve, built from Impl otherwise
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the model service; go-plugin calls it in the plugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := p.server
	if srv == nil {
		var err error
		if srv, err = newServer(p.Impl, nil); err != nil {
			return err
		}
	}
	pb.RegisterPluginServer(s, srv)
	return nil
}

// GRPCClient returns a *Client; go-plugin calls it in the host.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// PluginSets returns the versioned plugin sets for go-plugin's
// ClientConfig/ServeConfig.VersionedPlugins. The host passes nil.
func PluginSets(impl Plugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginKey: &GRPCPlugin{Impl: impl}},
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

// NewClientConfig returns a go-plugin client configuration that launches cmd
// as a plugin: the shared handshake, the versioned plugin set, gRPC only and
// the dial options above. Callers add Logger, Stderr, Managed, SecureConfig
// or replace Cmd with a RunnerFunc as they need.
func NewClientConfig(cmd *exec.Cmd) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSets(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  DialOptions(),
	}
}

// Dispense connects a started (or startable) go-plugin client and returns the
// model client. It starts the process if needed.
func Dispense(pc *plugin.Client) (*Client, error) {
	rpc, err := pc.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(PluginKey)
	if err != nil {
		return nil, err
	}
	c, ok := raw.(*Client)
	if !ok {
		return nil, fmt.Errorf("sdk: dispense: got %T, want *sdk.Client", raw)
	}
	return c, nil
}

// modulePath is the module that holds this package.
const modulePath = "github.com/genpipe/genpipe"

var sdkVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if bi.Main.Path == modulePath {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			if d.Replace != nil {
				return d.Version + " (replaced by " + d.Replace.Path + ")"
			}
			return d.Version
		}
	}
	return "unknown"
})

// SDKVersion is the version of the sdk module this binary was built with, as
// recorded in its build info ("(devel)" inside the sdk's own module).
func SDKVersion() string { return sdkVersion() }
