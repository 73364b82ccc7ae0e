package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/genpipe/genpipe/internal/suggest"
	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// LogLevelEnv names the environment variable that sets a plugin's log level
// (trace, debug, info, warn, error; default info). The host may set it.
const LogLevelEnv = "PIPELINE_PLUGIN_LOG_LEVEL"

// Serve is the whole main() of a plugin:
//
//	func main() { sdk.Serve(&myPlugin{}) }
//
// It serves p over go-plugin and gRPC until the host closes the connection,
// then exits the process. It logs (JSON, through hclog) to stderr, where the
// host picks the lines up and shows them with the plugin's name; it never
// writes to stdout, which carries the handshake. The host may call a loaded
// model from several goroutines at once, so model methods must be safe for
// concurrent use (or lock).
//
// Serve validates every call at the boundary (parameters against the declared
// specs, tensor shapes against the preset's contract, one seed and label per
// item, the number of items returned), turns a panic into an error naming the
// plugin and the call, and passes the host's context (cancellation and
// deadline) to every method.
func Serve(p Plugin) {
	// go-plugin writes the handshake to os.Stdout: anything printed before
	// it breaks the handshake, so Describe prints go to stderr.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	log := newPluginLogger("plugin")
	srv, err := newServer(p, log)
	os.Stdout = stdout
	if err != nil {
		log.Error("cannot serve", "error", err)
		os.Exit(1)
	}
	log = srv.log
	shm, err := wire.MapSharedMemoryFromEnv()
	switch {
	case err != nil:
		log.Warn("shared memory offered by the host cannot be used; tensors go inline", "error", err.Error())
	case shm != nil:
		srv.useSharedMemory(shm)
		log.Debug("tensors go through shared memory", "bytes", shm.Size())
	}
	wire.Serve(srv, log.Named("go-plugin"))
}

// newPluginLogger logs JSON to the process's real stderr. It holds on to the
// *os.File now, because go-plugin later swaps os.Stderr for a pipe.
func newPluginLogger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

// server is the plugin side of every RPC.
type server struct {
	pb.UnimplementedPluginServer
	impl   Plugin
	desc   Description
	descPB *pb.Description
	log    hclog.Logger
	// shm is the host's shared memory, nil when tensors go inline.
	shm *wire.Peer

	mu     sync.Mutex
	next   uint64
	models map[uint64]*loaded
}

var _ pb.PluginServer = (*server)(nil)

type loaded struct {
	model  Model
	cap    Capability
	preset *Preset // nil when the plugin declares no presets
}

func newServer(impl Plugin, log hclog.Logger) (s *server, err error) {
	if impl == nil {
		return nil, errors.New("sdk: serve: nil plugin")
	}
	var desc Description
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("sdk: serve: Describe panicked: %v\n%s", r, debug.Stack())
			}
		}()
		desc = impl.Describe()
	}()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = newPluginLogger("plugin")
	}
	if desc.Name != "" {
		log = log.ResetNamed(desc.Name)
	}
	for _, e := range ValidateDescription(desc) {
		log.Error("invalid description", "problem", e.Error())
	}
	dpb, err := descriptionToProto(&desc)
	if err != nil {
		return nil, fmt.Errorf("sdk: serve: plugin %s: describe: %w", desc.Name, err)
	}
	return &server{impl: impl, desc: desc, descPB: dpb, log: log, models: map[uint64]*loaded{}}, nil
}

// useSharedMemory takes tensor bytes through peer and says so in the
// description, echoing the memory's token.
func (s *server) useSharedMemory(peer *wire.Peer) {
	s.shm = peer
	s.descPB.ShmToken = peer.Token()
	s.descPB.ShmSize = uint64(peer.Size())
}

// The wire package builds servers through this hook (it cannot import
// sdk): sdk/client's tests pair a client with a server in one process.
func init() {
	wire.NewServer = func(impl any, log hclog.Logger, peer *wire.Peer) (pb.PluginServer, error) {
		p, ok := impl.(Plugin)
		if !ok {
			return nil, fmt.Errorf("sdk: serve: %T is not an sdk.Plugin", impl)
		}
		s, err := newServer(p, log)
		if err != nil {
			return nil, err
		}
		if peer != nil {
			s.useSharedMemory(peer)
		}
		return s, nil
	}
}

func (s *server) prefix(call string) string {
	return fmt.Sprintf("plugin %s: %s: ", s.desc.Name, call)
}

// fail builds an error for a request the boundary refuses.
func (s *server) fail(call string, code codes.Code, format string, a ...any) error {
	return status.Error(code, s.prefix(call)+fmt.Sprintf(format, a...))
}

// implErr wraps an error returned by the implementation.
func (s *server) implErr(ctx context.Context, call string, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return status.FromContextError(ctx.Err()).Err()
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "plugin "+s.desc.Name+": ") {
		msg = s.prefix(call) + msg
	}
	return status.Error(codes.Unknown, msg)
}

// guard turns a panic in the implementation into an error and logs its stack.
func (s *server) guard(call string, err *error) {
	if r := recover(); r != nil {
		s.log.Error("panic", "call", call, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, s.prefix(call)+fmt.Sprintf("panic: %v", r))
	}
}

func (s *server) Describe(context.Context, *pb.DescribeRequest) (*pb.Description, error) {
	return s.descPB, nil
}

func (s *server) Load(ctx context.Context, req *pb.LoadRequest) (_ *pb.LoadResponse, err error) {
	const call = "load"
	defer s.guard(call, &err)
	c := Capability(req.Capability)
	spec := s.desc.Capability(c)
	if spec == nil {
		return nil, s.fail(call, codes.InvalidArgument, "capability %q is not declared (declared: %s)", c, capNames(s.desc.Capabilities))
	}
	if c == CapTrain {
		return nil, s.fail(call, codes.InvalidArgument, "train is not loaded: the host calls Train directly")
	}
	preset := s.desc.Preset(req.Preset)
	if preset == nil && (req.Preset != "" || len(s.desc.Presets) > 0) {
		return nil, s.fail(call, codes.InvalidArgument, "unknown preset %q%s", req.Preset, s.presetHint(req.Preset))
	}
	presetName := ""
	if preset != nil {
		presetName = preset.Name
		if !preset.Has(c) {
			return nil, s.fail(call, codes.InvalidArgument, "preset %q does not support %s (it supports %v)", preset.Name, c, preset.Capabilities)
		}
	}
	params, perrs := CheckParams(spec.Params, wire.ParamsFromProto(req.Params), "")
	if len(perrs) > 0 {
		return nil, s.fail(call, codes.InvalidArgument, "invalid parameters: %s", joinParamErrors(perrs))
	}
	m, err := s.impl.Load(ctx, LoadRequest{
		Capability: c,
		Preset:     presetName,
		Weights:    req.Weights,
		Params:     params,
		Logger:     s.log.With("capability", string(c), "preset", presetName),
	})
	if err != nil {
		return nil, s.implErr(ctx, call, err)
	}
	if m == nil {
		return nil, s.fail(call, codes.Unknown, "Load returned no model and no error")
	}
	if !implements(m, c) {
		if cl, ok := m.(io.Closer); ok {
			_ = cl.Close()
		}
		return nil, s.fail(call, codes.Unknown, "model %T does not implement %s", m, capInterface(c))
	}
	s.mu.Lock()
	s.next++
	h := s.next
	s.models[h] = &loaded{model: m, cap: c, preset: preset}
	s.mu.Unlock()
	s.log.Debug("loaded", "handle", h, "capability", string(c), "preset", presetName)
	return &pb.LoadResponse{Handle: h}, nil
}

func (s *server) presetHint(name string) string {
	names := make([]string, len(s.desc.Presets))
	for i, p := range s.desc.Presets {
		names[i] = p.Name
	}
	if len(names) == 0 {
		return ": the plugin declares no presets"
	}
	hint := " (presets: " + strings.Join(names, ", ") + ")"
	if sug := suggest.DidYouMean(name, names); sug != "" {
		hint += "; " + sug
	}
	return hint
}

func (s *server) Unload(_ context.Context, req *pb.UnloadRequest) (_ *pb.Empty, err error) {
	const call = "unload"
	defer s.guard(call, &err)
	s.mu.Lock()
	l, ok := s.models[req.Handle]
	delete(s.models, req.Handle)
	s.mu.Unlock()
	if !ok {
		return nil, s.fail(call, codes.NotFound, "unknown model handle %d", req.Handle)
	}
	if cl, ok := l.model.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			return nil, s.fail(call, codes.Unknown, "close: %v", err)
		}
	}
	return &pb.Empty{}, nil
}

func (s *server) lookup(c Capability, h uint64) (*loaded, error) {
	s.mu.Lock()
	l, ok := s.models[h]
	s.mu.Unlock()
	if !ok {
		return nil, s.fail(string(c), codes.NotFound, "unknown model handle %d (never loaded, unloaded, or loaded by an earlier process)", h)
	}
	if l.cap != c {
		return nil, s.fail(string(c), codes.InvalidArgument, "model handle %d was loaded for %s, not %s", h, l.cap, c)
	}
	return l, nil
}

func (s *server) Encode(ctx context.Context, req *pb.BatchRequest) (*pb.TensorResponse, error) {
	return s.batchCall(ctx, CapEncode, req)
}

func (s *server) Translate(ctx context.Context, req *pb.BatchRequest) (*pb.TensorResponse, error) {
	return s.batchCall(ctx, CapTranslate, req)
}

func (s *server) Denoise(ctx context.Context, req *pb.BatchRequest) (*pb.TensorResponse, error) {
	return s.batchCall(ctx, CapDenoise, req)
}

func (s *server) batchCall(ctx context.Context, c Capability, req *pb.BatchRequest) (_ *pb.TensorResponse, err error) {
	call := string(c)
	defer s.guard(call, &err)
	sc, err := s.shm.BeginCall(req.Shm)
	if err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	// Deferred after guard, so it also runs first on a panic: nothing
	// touches the call's shared memory after it.
	defer sc.Done()
	l, err := s.lookup(c, req.Handle)
	if err != nil {
		return nil, err
	}
	b, err := batchFromProto(req, sc)
	if err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	var in *ImageSpec
	if l.preset != nil {
		in = l.preset.Input
	}
	if err := checkImages("input", b.Tensor, in, nil); err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	if err := s.checkLabels(l, b.Labels); err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	var out *Tensor
	switch c {
	case CapEncode:
		out, err = l.model.(Encoder).Encode(ctx, b)
	case CapTranslate:
		out, err = l.model.(Translator).Translate(ctx, b)
	case CapDenoise:
		out, err = l.model.(Denoiser).Denoise(ctx, b)
	}
	if err != nil {
		return nil, s.implErr(ctx, call, err)
	}
	if err := s.checkOutput(c, l, b.Len(), out, b.Tensor); err != nil {
		return nil, s.fail(call, codes.Unknown, "%v", err)
	}
	return responseOf(sc, out), nil
}

func (s *server) Generate(ctx context.Context, req *pb.GenerateRequest) (_ *pb.TensorResponse, err error) {
	const call = "generate"
	defer s.guard(call, &err)
	sc, err := s.shm.BeginCall(req.Shm)
	if err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	defer sc.Done()
	l, err := s.lookup(CapGenerate, req.Handle)
	if err != nil {
		return nil, err
	}
	g := GenerateRequest{Seeds: req.Seeds, Labels: wire.LabelsFromProto(req.Labels)}
	if req.Latents != nil {
		if g.Latents, err = tensorIn(sc, "the latents", req.Latents); err != nil {
			return nil, s.fail(call, codes.InvalidArgument, "latents: %v", err)
		}
	}
	n := len(g.Seeds)
	if n == 0 && g.Latents != nil {
		n = g.Latents.Len()
	}
	if g.Latents != nil {
		var want *LatentSpec
		if l.preset != nil {
			want = l.preset.Latent
		}
		if err := checkLatents(g.Latents, n, want); err != nil {
			return nil, s.fail(call, codes.InvalidArgument, "%v", err)
		}
	}
	if g.Seeds, err = fillSeeds(g.Seeds, n); err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	if g.Labels, err = fillLabels(g.Labels, n); err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	if err := s.checkLabels(l, g.Labels); err != nil {
		return nil, s.fail(call, codes.InvalidArgument, "%v", err)
	}
	out, err := l.model.(Generator).Generate(ctx, g)
	if err != nil {
		return nil, s.implErr(ctx, call, err)
	}
	if err := s.checkOutput(CapGenerate, l, n, out, nil); err != nil {
		return nil, s.fail(call, codes.Unknown, "%v", err)
	}
	return responseOf(sc, out), nil
}

func (s *server) checkLabels(l *loaded, labels []int) error {
	if l.preset == nil || l.preset.Classes == 0 {
		return nil
	}
	for i, y := range labels {
		if y < -1 || y >= l.preset.Classes {
			return fmt.Errorf("label %d of item %d is out of range: preset %q has %d classes (0..%d, or -1 for none)", y, i, l.preset.Name, l.preset.Classes, l.preset.Classes-1)
		}
	}
	return nil
}

// checkOutput validates what the implementation returned, so the host can
// rely on the declared contract.
func (s *server) checkOutput(c Capability, l *loaded, n int, out, in *Tensor) error {
	if out == nil {
		return errors.New("returned no tensor and no error")
	}
	if err := out.Check(); err != nil {
		return fmt.Errorf("returned an invalid tensor: %v", err)
	}
	if out.Len() != n || len(out.Shape) == 0 {
		return fmt.Errorf("returned %d items (shape %v) for a batch of %d", out.Len(), out.Shape, n)
	}
	if err := checkScores(s.desc.Capability(c), out.Scores, n); err != nil {
		return err
	}
	// Encode emits latents of Latent, generate those of LatentData when
	// the preset's data are latents.
	var lat *LatentSpec
	if l.preset != nil {
		switch {
		case c == CapEncode:
			lat = l.preset.Latent
		case c == CapGenerate && l.preset.LatentData != nil:
			lat = l.preset.LatentData
		}
	}
	if c == CapEncode || lat != nil {
		if len(out.Shape) != 2 {
			return fmt.Errorf("returned latents of shape %v, expected N x D", out.Shape)
		}
		if lat != nil {
			if c == CapGenerate && out.DType != Float32 {
				// The host trains and decodes these at full precision.
				return fmt.Errorf("returned %s latents, expected float32", out.DType)
			}
			if out.Space == "" {
				out.Space = lat.Space
			}
			if out.Space != lat.Space || out.Shape[1] != lat.Dim {
				return fmt.Errorf("returned latents %q of dim %d, the preset declares %q of dim %d", out.Space, out.Shape[1], lat.Space, lat.Dim)
			}
		}
		return nil
	}
	var want *ImageSpec
	if l.preset != nil {
		want = l.preset.Output
	}
	if os, ok := l.model.(OutputSpecer); ok {
		if w := os.OutputSpec(); w != nil {
			want = w
		}
	}
	if err := checkImages("output", out, want, in); err != nil {
		return fmt.Errorf("returned %v", err)
	}
	return nil
}

// batchFromProto converts a request; sc resolves shared-memory references
// (nil: none are allowed).
func batchFromProto(req *pb.BatchRequest, sc *wire.Call) (*Batch, error) {
	if req.Tensor == nil {
		return nil, errors.New("no input tensor")
	}
	var t *Tensor
	var err error
	if sc != nil {
		t, err = tensorIn(sc, "the tensor", req.Tensor)
	} else {
		t, err = tensorFromProto(req.Tensor)
	}
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	if len(t.Shape) == 0 {
		return nil, errors.New("input: scalar tensor, expected a batch")
	}
	seeds, err := fillSeeds(req.Seeds, t.Len())
	if err != nil {
		return nil, err
	}
	labels, err := fillLabels(wire.LabelsFromProto(req.Labels), t.Len())
	if err != nil {
		return nil, err
	}
	return &Batch{Tensor: t, Seeds: seeds, Labels: labels}, nil
}

// tensorIn converts a request tensor whose bytes may be in the call's
// shared memory: they are not copied, so the tensor is valid only during
// the call.
func tensorIn(sc *wire.Call, what string, t *pb.Tensor) (*Tensor, error) {
	t, err := sc.TensorIn(what, t)
	if err != nil {
		return nil, err
	}
	return tensorFromProto(t)
}

// fillSeeds makes sure there is one seed per item: a host that sends none
// gets the item index, so an implementation may always index Seeds.
func fillSeeds(seeds []uint64, n int) ([]uint64, error) {
	if len(seeds) == 0 {
		seeds = make([]uint64, n)
		for i := range seeds {
			seeds[i] = uint64(i)
		}
		return seeds, nil
	}
	if len(seeds) != n {
		return nil, fmt.Errorf("%d seeds for %d items, expected one per item", len(seeds), n)
	}
	return seeds, nil
}

// fillLabels makes sure there is one label per item (-1: none).
func fillLabels(labels []int, n int) ([]int, error) {
	if len(labels) == 0 {
		labels = make([]int, n)
		for i := range labels {
			labels[i] = -1
		}
		return labels, nil
	}
	if len(labels) != n {
		return nil, fmt.Errorf("%d labels for %d items, expected one per item", len(labels), n)
	}
	return labels, nil
}

// checkImages checks an NCHW (or NTCHW) tensor against a spec. A zero size
// in the spec means "any"; when like (the input) is given, spec is an
// output and its channels (0: the input's) and size rule apply to like.
func checkImages(what string, t *Tensor, spec *ImageSpec, like *Tensor) error {
	r := len(t.Shape)
	if r != 4 && r != 5 {
		return fmt.Errorf("%s of shape %v, expected images N x C x H x W (or N x T x C x H x W)", what, t.Shape)
	}
	if spec == nil {
		return nil
	}
	chw := t.Shape[r-3:]
	want := []int{spec.Channels, 0, 0}
	inH, inW := 0, 0
	if like != nil && len(like.Shape) >= 4 {
		lchw := like.Shape[len(like.Shape)-3:]
		if want[0] == 0 {
			want[0] = lchw[0]
		}
		inH, inW = lchw[1], lchw[2]
	}
	// An input spec has no size rule: its Height and Width (0: any) are
	// what OutSize gives for an unknown input.
	want[1], want[2] = spec.OutSize(inH, inW)
	ok := true
	for i := range want {
		if want[i] != 0 && want[i] != chw[i] {
			ok = false
		}
	}
	if spec.DType != 0 && t.DType != spec.DType {
		ok = false
	}
	if !ok {
		rule := ""
		if z := spec.Size; z.Rule != "" && z.Rule != SizeFixed {
			rule = fmt.Sprintf(" (output size %s of a %dx%d input)", z, inW, inH)
		}
		return fmt.Errorf("%s is %s %s, expected %s %s%s", what, dims(chw), t.DType, dims(want), spec.DType, rule)
	}
	return nil
}

func dims(d []int) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = fmt.Sprint(x)
		if x == 0 {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, "x")
}

func checkLatents(t *Tensor, n int, spec *LatentSpec) error {
	if len(t.Shape) != 2 {
		return fmt.Errorf("latents of shape %v, expected N x D", t.Shape)
	}
	if t.Len() != n {
		return fmt.Errorf("%d latents for %d seeds", t.Len(), n)
	}
	if spec == nil {
		return nil
	}
	if t.Shape[1] != spec.Dim || (t.Space != "" && t.Space != spec.Space) {
		return fmt.Errorf("latents %q of dim %d, expected %q of dim %d", t.Space, t.Shape[1], spec.Space, spec.Dim)
	}
	return nil
}

func implements(m Model, c Capability) bool {
	switch c {
	case CapEncode:
		_, ok := m.(Encoder)
		return ok
	case CapGenerate:
		_, ok := m.(Generator)
		return ok
	case CapTranslate:
		_, ok := m.(Translator)
		return ok
	case CapDenoise:
		_, ok := m.(Denoiser)
		return ok
	}
	return false
}

func capInterface(c Capability) string {
	switch c {
	case CapEncode:
		return "sdk.Encoder"
	case CapGenerate:
		return "sdk.Generator"
	case CapTranslate:
		return "sdk.Translator"
	case CapDenoise:
		return "sdk.Denoiser"
	case CapTrain:
		return "sdk.Trainer"
	}
	return string(c)
}

func capNames(cs []CapabilitySpec) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = string(c.Name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func joinParamErrors(errs []*ParamError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// checkScores checks an answer's scores against the capability's
// declaration: only declared names, one finite-or-not value per item (a
// NaN is a model's honest answer for an item it cannot score).
func checkScores(spec *CapabilitySpec, scores map[string][]float64, n int) error {
	for name, v := range scores {
		if spec == nil || spec.Score(name) == nil {
			var declared []string
			if spec != nil {
				for _, sc := range spec.Scores {
					declared = append(declared, sc.Name)
				}
			}
			if len(declared) == 0 {
				return fmt.Errorf("returned score %q, but the capability declares no scores (CapabilitySpec.Scores)", name)
			}
			return fmt.Errorf("returned score %q, which the capability does not declare (it declares %s)", name, strings.Join(declared, ", "))
		}
		if len(v) != n {
			return fmt.Errorf("returned %d values of score %q for a batch of %d", len(v), name, n)
		}
	}
	return nil
}
