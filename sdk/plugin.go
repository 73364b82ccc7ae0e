package sdk

import (
	"context"

	"github.com/hashicorp/go-hclog"
)

// Plugin is the one interface every plugin implements. Describe is static;
// Load prepares a model for one pipeline stage (one preset or weights file and
// that stage's validated parameters). The returned model implements the
// capability interfaces it supports; Serve checks that it has the one asked for.
type Plugin interface {
	Describe() Description
	Load(ctx context.Context, req LoadRequest) (Model, error)
}

// Model is a loaded model. It implements some of [Encoder], [Generator],
// [Translator] and [Denoiser], and optionally io.Closer to free resources when
// the host unloads it.
type Model any

// OutputSpecer is implemented by a loaded model whose output is known only
// once its weights are (a preset trained by the user, whose channels come
// from the training): the SDK then checks each output against OutputSpec
// instead of the preset's declared Output. The planner, which runs before
// any load, sees the preset's declaration, so a preset that relies on this
// declares 0 (unknown) for what its weights decide.
type OutputSpecer interface {
	OutputSpec() *ImageSpec
}

// LoadRequest asks a plugin to prepare a model for one stage.
type LoadRequest struct {
	// Capability is the stage kind the model will serve.
	Capability Capability
	// Preset names shipped weights; empty selects the default preset.
	Preset string
	// Weights is a path to a weights file; it overrides the preset's weights.
	Weights string
	// Params are the stage's parameters, validated against the capability's
	// declared Params with defaults filled in.
	Params Params
	// Logger writes to the plugin's stderr; the host shows it with the
	// plugin's name.
	Logger hclog.Logger
}

// Batch is a batch of items crossing the boundary. Seeds and Labels, when set,
// have one entry per item along Tensor's leading dimension.
//
// In a plugin, the Data of the batch passed to Encode, Translate or Denoise
// (and of GenerateRequest.Latents) may point into memory shared with the
// host, which reuses it for other calls: it is valid only until the method
// returns. Do not retain Data (nor a tensor sharing it) after the call;
// copy what must outlive it. Writing to it during the call, and returning
// the input tensor itself, are fine: the SDK copies the result before the
// call ends.
type Batch struct {
	// Tensor holds images (NCHW, or NTCHW for frame sequences) or latents (ND).
	*Tensor
	// Seeds are per-item seeds derived by the host from (pipeline seed, stage
	// id, item index): use them, not a batch-level RNG, so results do not
	// depend on batch size or order.
	Seeds []uint64
	// Labels are per-item class labels (-1: none).
	Labels []int
	// Inputs holds, in a training whose preset reads several inputs
	// ([Preset.TrainInputs]), the batches of the other roles by name, this
	// batch being the first role's: CycleGAN's Inputs["b"] beside domain A's
	// images, pix2pix's Inputs["target"] beside its inputs. A role marked
	// Paired has the same length, each item the partner of this batch's; the
	// others are drawn in their own shuffled order. Nil otherwise.
	Inputs map[string]*Batch
}

// GenerateRequest asks for one image per seed.
type GenerateRequest struct {
	Seeds []uint64
	// Labels has one class per item for conditional models (nil otherwise).
	Labels []int
	// Latents, when non-nil, are decoded instead of sampling from the prior
	// (N x D with Space set).
	Latents *Tensor
}

// Encoder maps images to latents (N x D tensor with Space set).
type Encoder interface {
	Encode(ctx context.Context, in *Batch) (*Tensor, error)
}

// Generator makes images from noise, labels or latents.
type Generator interface {
	Generate(ctx context.Context, req GenerateRequest) (*Tensor, error)
}

// Translator maps images of one domain to another (pix2pix, CycleGAN, filters).
type Translator interface {
	Translate(ctx context.Context, in *Batch) (*Tensor, error)
}

// Denoiser removes noise from images.
type Denoiser interface {
	Denoise(ctx context.Context, in *Batch) (*Tensor, error)
}

// Trainer is implemented by plugins that can train a model. The host streams
// data batches in and receives progress and weights back.
type Trainer interface {
	Train(ctx context.Context, s TrainSession) error
}

// TrainSession is the plugin's side of one training run.
type TrainSession interface {
	// Request is the training configuration.
	Request() TrainRequest
	// Next returns the next batch of training data; io.EOF when the host has
	// no more (the end of the last epoch it was asked for). The host counts
	// the batches it hands out: a checkpoint sent with Save records that
	// count, so save between Next calls, after training on the batches
	// received so far (a plugin that reads ahead would lose them on resume).
	Next(ctx context.Context) (*Batch, error)
	// Eval returns the next batch of held-out data, for metrics: one pass
	// over the held-out set in a fixed order, then io.EOF; the call after
	// io.EOF starts a new pass, so a plugin can evaluate as often as it
	// likes (say after each epoch). It returns io.EOF at once when the run
	// has no held-out data. Eval does not advance Next.
	Eval(ctx context.Context) (*Batch, error)
	// Report sends progress and metrics to the host.
	Report(ev TrainEvent) error
	// Save sends weights to the host: a checkpoint to resume from, or the
	// final weights when final is true.
	Save(weights []byte, final bool) error
	// Logger writes to the plugin's stderr.
	Logger() hclog.Logger
}

// TrainRequest configures a training run.
type TrainRequest struct {
	// Preset names the architecture/config preset to train (may be empty).
	Preset string
	// Params are the train capability's validated parameters.
	Params Params
	// Resume holds a checkpoint previously sent with Save (nil: start fresh).
	Resume []byte
	// Init, when set (and Resume is not), holds weights to start from
	// instead of initialising from Seed: final weights this plugin saved
	// earlier, to fine-tune them or to train them for longer. Optimizer
	// state starts afresh. Refuse weights of another architecture.
	Init []byte
	// Seed is the run's seed (the pipeline file's seed:): seed weight
	// initialisation and any other randomness not tied to an item from it,
	// so that a run is reproducible. Per-item randomness should use the
	// batch's Seeds.
	Seed uint64
	// Epochs and Steps say how much data the host will send: Steps counts
	// the batches of all Epochs from the start of training, also when
	// resuming (use it as TrainEvent.Total, or for a learning-rate
	// schedule). 0 means unknown.
	Epochs, Steps int
	// CheckpointEvery asks the plugin to Save a checkpoint every so many
	// steps (0: only when it likes). The host writes each checkpoint to disk
	// and resumes from the last one after an interruption.
	CheckpointEvery int
	// SampleEvery asks the plugin to Report a TrainEvent with Samples every
	// so many steps, and at the end (0: never), so that a person can watch
	// the model learn. Plugins that have nothing to show ignore it.
	SampleEvery int
	// Eval, on the host side, supplies held-out batches to the plugin's
	// TrainSession.Eval: a pass in order ending with io.EOF, restarting on
	// the call after that (nil: no held-out data). It is not sent; in a
	// plugin it is the session's Eval.
	Eval func(ctx context.Context) (*Batch, error)
}

// TrainEvent reports training progress.
type TrainEvent struct {
	Epoch, Step int
	// Total is the number of steps planned (0: unknown).
	Total int
	// Metrics are named scalars such as loss terms.
	Metrics map[string]float64
	// Message is free text (e.g. a warning about a NaN loss).
	Message string
	// Samples, when set, are images made by the model as it is at Step
	// (NCHW, in the preset's output format), which the host saves as a
	// grid (see TrainRequest.SampleEvery). Make them from the same inputs
	// every time (fixed noise, fixed held-out items) so that successive
	// grids show the model's progress rather than new draws.
	Samples *Tensor
	// SampleColumns is the grid's width in images (0: the host chooses),
	// e.g. 10 to give each class of a conditional model its own row.
	SampleColumns int
}
