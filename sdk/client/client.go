package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/genpipe/genpipe/sdk"
	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// Errors a [Client] call may wrap; test with errors.Is.
var (
	// ErrConnection: the plugin process could not be reached or the
	// connection broke during the call (typically: the process died).
	ErrConnection = errors.New("connection to the plugin lost")
	// ErrInvalid: the plugin's SDK refused the request at the boundary (bad
	// parameters, shapes, seeds or labels); the implementation was not called.
	ErrInvalid = errors.New("invalid request")
	// ErrPanic: the implementation panicked; the plugin process survives.
	ErrPanic = errors.New("plugin panicked")
	// ErrTooLarge: a message exceeded MaxMessageBytes.
	ErrTooLarge = errors.New("message too large")
)

// Handle identifies a model loaded in one plugin process. It is not valid in
// another process (e.g. after a restart).
type Handle uint64

// Client is the host's side of one plugin connection. It is safe for
// concurrent use. Large batches are split so that no message exceeds
// ChunkBytes, and the parts' results are joined again. sdk.Tensor bytes travel
// in the gRPC messages unless [Client.UseSharedMemory] turned the
// shared-memory data plane on. Tensors a call returns are the caller's own.
type Client struct {
	rpc pb.PluginClient
	shm atomic.Pointer[SharedMemory]

	mu      sync.Mutex
	desc    *sdk.Description
	handles map[Handle]*handleInfo
}

type handleInfo struct {
	cap    sdk.Capability
	preset *sdk.Preset
}

// NewClient wraps a gRPC connection to a plugin. Hosts normally get a Client
// from [Dispense]; the connection's dial options should include
// [DialOptions].
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: pb.NewPluginClient(cc), handles: map[Handle]*handleInfo{}}
}

func (c *Client) prefix(call string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.desc != nil {
		return fmt.Sprintf("plugin %s: %s: ", c.desc.Name, call)
	}
	return fmt.Sprintf("plugin: %s: ", call)
}

// remoteError is an error produced by the plugin's side of the boundary; its
// message already names the plugin and call.
type remoteError struct {
	msg  string
	code codes.Code
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.code == codes.InvalidArgument || e.code == codes.NotFound
	case ErrPanic:
		return e.code == codes.Internal
	}
	return false
}

// rpcErr turns a gRPC error into a plain error: the plugin's own message when
// it made one, otherwise a prefixed description that wraps one of the
// sentinel errors or the context's error.
func (c *Client) rpcErr(ctx context.Context, call string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if ctx.Err() != nil {
			return fmt.Errorf("%s%w", c.prefix(call), ctx.Err())
		}
		return fmt.Errorf("%s%w", c.prefix(call), err)
	}
	switch st.Code() {
	case codes.Canceled:
		return fmt.Errorf("%s%w", c.prefix(call), context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s%w", c.prefix(call), context.DeadlineExceeded)
	case codes.Unavailable:
		if ctx.Err() != nil {
			return fmt.Errorf("%s%w", c.prefix(call), ctx.Err())
		}
		return fmt.Errorf("%s%w: %s", c.prefix(call), ErrConnection, st.Message())
	case codes.ResourceExhausted:
		return fmt.Errorf("%s%w: %s", c.prefix(call), ErrTooLarge, st.Message())
	}
	if msg := st.Message(); strings.HasPrefix(msg, "plugin ") {
		return &remoteError{msg: msg, code: st.Code()}
	}
	return fmt.Errorf("%s%s", c.prefix(call), st.Message())
}

// Describe returns the plugin's description. The first successful answer is
// cached; callers must not modify it.
func (c *Client) Describe(ctx context.Context) (sdk.Description, error) {
	c.mu.Lock()
	d := c.desc
	c.mu.Unlock()
	if d != nil {
		return *d, nil
	}
	resp, err := c.rpc.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return sdk.Description{}, c.rpcErr(ctx, "describe", err)
	}
	desc := descriptionFromProto(resp)
	c.mu.Lock()
	if c.desc == nil {
		c.desc = &desc
	}
	d = c.desc
	c.mu.Unlock()
	return *d, nil
}

// UseSharedMemory sends tensor bytes through m from now on, if the plugin
// process mapped it: m must have been attached to the command that started
// this client's process. It reports whether the plugin did (a plugin built
// with an older SDK, on another OS or with GENPIPE_SHM=off did not, and the
// client stays inline). The caller keeps ownership of m and closes it after
// the process has exited.
func (c *Client) UseSharedMemory(ctx context.Context, m *SharedMemory) (bool, error) {
	resp, err := c.rpc.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return false, c.rpcErr(ctx, "describe", err)
	}
	c.mu.Lock()
	if c.desc == nil {
		desc := descriptionFromProto(resp)
		c.desc = &desc
	}
	c.mu.Unlock()
	if m == nil || resp.ShmSize != uint64(m.Size()) || !bytes.Equal(resp.ShmToken, m.Token()) {
		return false, nil
	}
	c.shm.Store(m)
	return true, nil
}

// SharedMemoryStats returns the counters of the shared memory the client
// uses; ok is false when its tensors go inline.
func (c *Client) SharedMemoryStats() (stats SharedMemoryStats, ok bool) {
	m := c.shm.Load()
	if m == nil {
		return SharedMemoryStats{}, false
	}
	return m.Stats(), true
}

// lease takes shared memory for a call with the given input tensor (nil:
// none) and expected output bytes (0: unknown), or returns nil when the call
// goes inline: no shared memory, too few bytes to gain from it, or no room.
func (c *Client) lease(in *sdk.Tensor, outBytes int) *wire.Lease {
	m := c.shm.Load()
	if m == nil {
		return nil
	}
	inBytes := 0
	if in != nil {
		inBytes = len(in.Data)
	}
	if inBytes+outBytes < wire.MinBytes {
		return nil
	}
	return m.Lease(inBytes, outBytes)
}

// Load prepares a model for one stage. req.Logger is ignored (the plugin
// logs to its own stderr).
func (c *Client) Load(ctx context.Context, req sdk.LoadRequest) (Handle, error) {
	desc, err := c.Describe(ctx)
	if err != nil {
		return 0, err
	}
	params, err := wire.ParamsToProto(req.Params)
	if err != nil {
		return 0, fmt.Errorf("%s%v", c.prefix("load"), err)
	}
	resp, err := c.rpc.Load(ctx, &pb.LoadRequest{
		Capability: string(req.Capability),
		Preset:     req.Preset,
		Weights:    req.Weights,
		Params:     params,
	})
	if err != nil {
		return 0, c.rpcErr(ctx, "load", err)
	}
	info := &handleInfo{cap: req.Capability}
	if p := desc.Preset(req.Preset); p != nil {
		cp := *p
		info.preset = &cp
	}
	h := Handle(resp.Handle)
	c.mu.Lock()
	c.handles[h] = info
	c.mu.Unlock()
	return h, nil
}

// Unload frees a model (the plugin closes it if it implements io.Closer).
func (c *Client) Unload(ctx context.Context, h Handle) error {
	c.mu.Lock()
	delete(c.handles, h)
	c.mu.Unlock()
	_, err := c.rpc.Unload(ctx, &pb.UnloadRequest{Handle: uint64(h)})
	return c.rpcErr(ctx, "unload", err)
}

func (c *Client) info(h Handle) *handleInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handles[h]
}

// Encode maps images to latents.
func (c *Client) Encode(ctx context.Context, h Handle, in *sdk.Batch) (*sdk.Tensor, error) {
	return c.batchCall(ctx, sdk.CapEncode, h, in, c.rpc.Encode)
}

// Translate maps images to images.
func (c *Client) Translate(ctx context.Context, h Handle, in *sdk.Batch) (*sdk.Tensor, error) {
	return c.batchCall(ctx, sdk.CapTranslate, h, in, c.rpc.Translate)
}

// Denoise removes noise from images.
func (c *Client) Denoise(ctx context.Context, h Handle, in *sdk.Batch) (*sdk.Tensor, error) {
	return c.batchCall(ctx, sdk.CapDenoise, h, in, c.rpc.Denoise)
}

type batchRPC func(context.Context, *pb.BatchRequest, ...grpc.CallOption) (*pb.TensorResponse, error)

func (c *Client) batchCall(ctx context.Context, cap sdk.Capability, h Handle, in *sdk.Batch, rpc batchRPC) (*sdk.Tensor, error) {
	call := string(cap)
	if in == nil || in.Tensor == nil {
		return nil, fmt.Errorf("%s%w: no input tensor", c.prefix(call), ErrInvalid)
	}
	if err := in.Check(); err != nil {
		return nil, fmt.Errorf("%s%w: input: %v", c.prefix(call), ErrInvalid, err)
	}
	if len(in.Shape) == 0 {
		return nil, fmt.Errorf("%s%w: input is a scalar, expected a batch", c.prefix(call), ErrInvalid)
	}
	n := in.Len()
	if len(in.Seeds) != 0 && len(in.Seeds) != n {
		return nil, fmt.Errorf("%s%w: %d seeds for %d items", c.prefix(call), ErrInvalid, len(in.Seeds), n)
	}
	if len(in.Labels) != 0 && len(in.Labels) != n {
		return nil, fmt.Errorf("%s%w: %d labels for %d items", c.prefix(call), ErrInvalid, len(in.Labels), n)
	}
	outItem := c.outItemBytes(h, cap, in.Tensor)
	per, err := itemsPerCall(max(in.ItemBytes(), outItem))
	if err != nil {
		return nil, fmt.Errorf("%s%w: %v", c.prefix(call), ErrTooLarge, err)
	}
	if outItem == 0 {
		// Unknown output size: offer as much room as the input takes,
		// which fits image-to-image calls; a larger answer goes inline.
		outItem = in.ItemBytes()
	}
	return c.split(ctx, call, n, per, func(i, j int) (*sdk.Tensor, error) {
		part := in.Tensor.Slice(i, j)
		req := &pb.BatchRequest{Handle: uint64(h)}
		if len(in.Seeds) > 0 {
			req.Seeds = in.Seeds[i:j]
		}
		if len(in.Labels) > 0 {
			req.Labels = wire.LabelsToProto(in.Labels[i:j])
		}
		l := c.lease(part, outItem*(j-i))
		if l == nil {
			req.Tensor = tensorToProto(part)
		} else {
			defer l.Release()
			req.Tensor, req.Shm = l.TensorIn(tensorToProto(part), part.Data), l.Call()
		}
		resp, err := rpc(ctx, req, wire.CallOptions...)
		if err != nil {
			return nil, err
		}
		t, err := tensorFromLease(resp.Tensor, l)
		return withScores(t, resp.Scores), err
	})
}

// Generate makes one image per seed (or per latent when only latents are
// given).
func (c *Client) Generate(ctx context.Context, h Handle, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	const call = "generate"
	n := len(req.Seeds)
	latItem := 0
	if req.Latents != nil {
		if err := req.Latents.Check(); err != nil || len(req.Latents.Shape) == 0 {
			return nil, fmt.Errorf("%s%w: latents: %v (shape %v)", c.prefix(call), ErrInvalid, err, req.Latents.Shape)
		}
		if n == 0 {
			n = req.Latents.Len()
		}
		if req.Latents.Len() != n {
			return nil, fmt.Errorf("%s%w: %d latents for %d seeds", c.prefix(call), ErrInvalid, req.Latents.Len(), n)
		}
		latItem = req.Latents.ItemBytes()
	}
	if len(req.Labels) != 0 && len(req.Labels) != n {
		return nil, fmt.Errorf("%s%w: %d labels for %d seeds", c.prefix(call), ErrInvalid, len(req.Labels), n)
	}
	per := wire.MaxGenerateItems
	outItem := c.outItemBytes(h, sdk.CapGenerate, nil)
	if outItem > 0 || latItem > 0 {
		var err error
		if per, err = itemsPerCall(max(outItem, latItem)); err != nil {
			return nil, fmt.Errorf("%s%w: %v", c.prefix(call), ErrTooLarge, err)
		}
		if outItem == 0 {
			per = min(per, wire.MaxGenerateItems)
		}
	}
	return c.split(ctx, call, n, per, func(i, j int) (*sdk.Tensor, error) {
		r := &pb.GenerateRequest{Handle: uint64(h)}
		if len(req.Seeds) > 0 {
			r.Seeds = req.Seeds[i:j]
		}
		if len(req.Labels) > 0 {
			r.Labels = wire.LabelsToProto(req.Labels[i:j])
		}
		var lat *sdk.Tensor
		if req.Latents != nil {
			lat = req.Latents.Slice(i, j)
			r.Latents = tensorToProto(lat)
		}
		// With an unknown output size (outItem 0) no room is offered and
		// the images come back inline.
		if l := c.lease(lat, outItem*(j-i)); l != nil {
			defer l.Release()
			r.Shm = l.Call()
			if lat != nil {
				r.Latents = l.TensorIn(r.Latents, lat.Data)
			}
			resp, err := c.rpc.Generate(ctx, r, wire.CallOptions...)
			if err != nil {
				return nil, err
			}
			t, err := tensorFromLease(resp.Tensor, l)
			return withScores(t, resp.Scores), err
		}
		resp, err := c.rpc.Generate(ctx, r, wire.CallOptions...)
		if err != nil {
			return nil, err
		}
		t, err := tensorFromProto(resp.Tensor)
		return withScores(t, resp.Scores), err
	})
}

// maxItemBytes is the largest single item a call can carry: the message
// limit less room for the rest of the message.
const maxItemBytes = MaxMessageBytes - 1<<20

func itemsPerCall(item int) (int, error) {
	if item > maxItemBytes {
		return 0, fmt.Errorf("one item is %d bytes, more than the %d bytes one call can carry", item, maxItemBytes)
	}
	return max(1, ChunkBytes/max(item, 1)), nil
}

// outItemBytes estimates the bytes of one output item from the preset's
// Output spec: its channels (0: the input's) and its size rule applied to
// the input's size. It returns 0 when unknown.
func (c *Client) outItemBytes(h Handle, cap sdk.Capability, in *sdk.Tensor) int {
	info := c.info(h)
	if info == nil || info.preset == nil {
		return 0
	}
	if cap == sdk.CapEncode {
		if l := info.preset.Latent; l != nil {
			return l.Dim * 4
		}
		return 0
	}
	if l := info.preset.LatentData; l != nil && cap == sdk.CapGenerate {
		return l.Dim * 4
	}
	out := info.preset.Output
	if out == nil {
		return 0
	}
	dims := []int{out.Channels, 0, 0}
	dims[1], dims[2] = out.OutSize(0, 0)
	size := out.DType.Size()
	frames := 1
	if in != nil && len(in.Shape) >= 4 {
		r := len(in.Shape)
		if dims[0] == 0 {
			dims[0] = in.Shape[r-3]
		}
		dims[1], dims[2] = out.OutSize(in.Shape[r-2], in.Shape[r-1])
		if size == 0 {
			size = in.DType.Size()
		}
		if r == 5 {
			frames = in.Shape[1]
		}
	}
	if dims[0] == 0 || dims[1] == 0 || dims[2] == 0 || size == 0 {
		return 0
	}
	return frames * dims[0] * dims[1] * dims[2] * size
}

// split runs fn over [0,n) in parts of at most per items and joins the
// results. A part whose response turns out larger than the limit is halved
// and retried.
func (c *Client) split(ctx context.Context, call string, n, per int, fn func(i, j int) (*sdk.Tensor, error)) (*sdk.Tensor, error) {
	var parts []*sdk.Tensor
	var run func(i, j int) error
	run = func(i, j int) error {
		t, err := fn(i, j)
		if status.Code(err) == codes.ResourceExhausted && j-i > 1 && ctx.Err() == nil {
			mid := i + (j-i)/2
			if err := run(i, mid); err != nil {
				return err
			}
			return run(mid, j)
		}
		if err != nil {
			return c.rpcErr(ctx, call, err)
		}
		if t == nil || t.Len() != j-i {
			return fmt.Errorf("%sreturned %v items for %d", c.prefix(call), shapeOf(t), j-i)
		}
		parts = append(parts, t)
		return nil
	}
	if n == 0 {
		if err := run(0, 0); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i += per {
		if err := run(i, min(i+per, n)); err != nil {
			return nil, err
		}
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	out, err := sdk.Concat(parts...)
	if err != nil {
		return nil, fmt.Errorf("%sjoining the parts of a split batch: %v", c.prefix(call), err)
	}
	return out, nil
}

// tensorFromLease converts a response tensor, copying bytes the plugin
// answered through the lease l out of shared memory (see wire.Resolve).
func tensorFromLease(t *pb.Tensor, l *wire.Lease) (*sdk.Tensor, error) {
	t, err := wire.Resolve(t, l)
	if err != nil {
		return nil, err
	}
	return tensorFromProto(t)
}

func shapeOf(t *sdk.Tensor) any {
	if t == nil {
		return "no"
	}
	return t.Shape
}
