package sdk

import "fmt"

// Capability names one thing a model can do. The names are also the stage kinds
// of the pipeline file that use them.
type Capability string

// The capabilities a plugin may declare.
const (
	CapEncode    Capability = "encode"
	CapGenerate  Capability = "generate"
	CapTranslate Capability = "translate"
	CapDenoise   Capability = "denoise"
	CapTrain     Capability = "train"
)

// Capabilities lists every capability in a stable order.
var Capabilities = []Capability{CapEncode, CapGenerate, CapTranslate, CapDenoise, CapTrain}

// Description is what a plugin says about itself. The host builds validation,
// `pipeline plugins describe`, docs and the JSON Schema from this one value.
type Description struct {
	// Name is the plugin's name as used by `model:` in a pipeline.
	Name string `json:"name,omitempty"`
	// Version is the plugin's own version (semver recommended).
	Version string `json:"version,omitempty"`
	// Doc is a one-paragraph description.
	Doc string `json:"doc,omitempty"`
	// Capabilities lists what the plugin can do, each with its parameters.
	Capabilities []CapabilitySpec `json:"capabilities,omitempty"`
	// Presets are the named weights (or configurations) the plugin ships.
	// A stage that names no preset uses the one marked Default, else the first.
	Presets []Preset `json:"presets,omitempty"`
	// BatchSize is the preferred number of items per call (0: the host picks).
	BatchSize int `json:"batch_size,omitempty"`
}

// CapabilitySpec declares one capability and the stage parameters it takes.
type CapabilitySpec struct {
	Name   Capability `json:"name,omitempty"`
	Doc    string     `json:"doc,omitempty"`
	Params []Param    `json:"params,omitempty"`
	// Scores are the per-item scores this capability's answers carry
	// ([Tensor.Scores]), the same for every preset: the planner lets a
	// stage downstream keep items by them, and save writes them into the
	// provenance and the manifest.
	Scores []ScoreSpec `json:"scores,omitempty"`
}

// ScoreSpec declares one per-item score.
type ScoreSpec struct {
	// Name is how the pipeline file names it (lowercase letters, digits
	// and _), e.g. "bits_per_dim".
	Name string `json:"name"`
	// Doc says what it measures, in which unit, and which way is better.
	Doc string `json:"doc,omitempty"`
}

// Score returns the declared score of that name, or nil.
func (c *CapabilitySpec) Score(name string) *ScoreSpec {
	for i := range c.Scores {
		if c.Scores[i].Name == name {
			return &c.Scores[i]
		}
	}
	return nil
}

// Capability returns the spec of capability c, or nil.
func (d *Description) Capability(c Capability) *CapabilitySpec {
	for i := range d.Capabilities {
		if d.Capabilities[i].Name == c {
			return &d.Capabilities[i]
		}
	}
	return nil
}

// Preset returns the named preset; "" selects the default preset. It returns
// nil when there is no such preset.
func (d *Description) Preset(name string) *Preset {
	if name == "" {
		for i := range d.Presets {
			if d.Presets[i].Default {
				return &d.Presets[i]
			}
		}
		if len(d.Presets) > 0 {
			return &d.Presets[0]
		}
		return nil
	}
	for i := range d.Presets {
		if d.Presets[i].Name == name {
			return &d.Presets[i]
		}
	}
	return nil
}

// Preset is a named set of shipped weights (or a fixed configuration) with its
// input/output contract, which the planner checks against neighbouring stages.
type Preset struct {
	Name string `json:"name,omitempty"`
	Doc  string `json:"doc,omitempty"`
	// Default marks the preset used when a stage names none.
	Default bool `json:"default,omitempty"`
	// Capabilities this preset supports (a subset of the plugin's).
	Capabilities []Capability `json:"capabilities,omitempty"`
	// Input is the image contract of encode, translate and denoise.
	Input *ImageSpec `json:"input,omitempty"`
	// Output is the image contract of generate, translate and denoise.
	Output *ImageSpec `json:"output,omitempty"`
	// Latent is the latent space of encode output and generate input.
	Latent *LatentSpec `json:"latent,omitempty"`
	// LatentData says the model's data are latents of this space, not
	// images: generate emits them (float32 N x Dim, Space set) instead of
	// images, and a training reads them (train.input names a chain that
	// encodes images into this space). A latent diffusion model over
	// another plugin's latents declares it, so the host can chain it with
	// the encoder and decoder of that space and check the chain before it
	// runs. Output must then be nil: a preset's generate emits one kind of
	// thing.
	LatentData *LatentSpec `json:"latent_data,omitempty"`
	// ExactInput says items must reach encode, translate and denoise at
	// Input's size as they are: by default the host does not conform them
	// (a stage's conform: defaults to off, so a size that differs is an
	// error when the pipeline is validated), because what the model
	// computes is about the very pixels it gets: the likelihood of a
	// resized image is not the image's. A stage may still write conform:
	// to have the host resize.
	ExactInput bool `json:"exact_input,omitempty"`
	// Classes is the number of labels a conditional model accepts (0: none).
	Classes int `json:"classes,omitempty"`
	// Weights describes the shipped weights (e.g. "embedded, sha256:...").
	Weights string `json:"weights,omitempty"`
	// TrainInputs names the data a training of this preset reads when it
	// reads more than one stream, one role each (train.input in the pipeline
	// file maps each role to a stage): CycleGAN's two domains {a, b},
	// pix2pix's pairs {input, target}. Empty: one stream, train.input names
	// one stage. The first role is the batch itself, the others arrive in
	// [Batch.Inputs]; the first role's count sets the epoch.
	TrainInputs []TrainInput `json:"train_inputs,omitempty"`
}

// TrainInput is one role of a training's data.
type TrainInput struct {
	// Name is the role's key under train.input ("a", "target").
	Name string `json:"name"`
	// Doc says what the role holds.
	Doc string `json:"doc,omitempty"`
	// Paired aligns the role with the first one item by item: the host
	// checks they have the same count, names and image sizes, and keeps
	// them in one order. Unpaired roles are shuffled independently (a
	// CycleGAN never sees a pair).
	Paired bool `json:"paired,omitempty"`
	// Image is the contract of the role's images (nil: the preset's Input).
	Image *ImageSpec `json:"image,omitempty"`
}

// Has reports whether the preset supports capability c.
func (p *Preset) Has(c Capability) bool {
	for _, x := range p.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// ImageSpec is an image tensor contract (one item, CHW). A zero Channels,
// Height or Width means "any" on an input and "same as the input" on an
// output, unless Size says otherwise. Min and Max give the value range (0
// and 255 for uint8 pixels).
type ImageSpec struct {
	Channels int     `json:"channels,omitempty"`
	Height   int     `json:"height,omitempty"`
	Width    int     `json:"width,omitempty"`
	DType    DType   `json:"dtype,omitempty"`
	Min      float32 `json:"min"`
	Max      float32 `json:"max"`
	// Size is how an output's height and width follow from the input's
	// (see [Size]); it must be zero on an input. The zero Size keeps the
	// meaning plugins had before it existed: a Height and Width given are
	// fixed, zero ones are the input's.
	Size Size `json:"size,omitzero"`
}

// SizeRule names how a model's output height and width follow from its
// input's.
type SizeRule string

// The size rules. The planner propagates sizes through a chain of stages
// with them, [Serve] checks every output against them before it leaves
// the plugin, and sdktest checks that a plugin keeps its word.
const (
	// SizeSame: the output has the input's height and width (Height and
	// Width are 0).
	SizeSame SizeRule = "same"
	// SizeFixed: the output is Height x Width whatever the input (both set).
	SizeFixed SizeRule = "fixed"
	// SizeScale: each output dimension is the input's times Num/Den,
	// rounded down (Height and Width are 0): 2/1 upscales x2, 1/2 halves.
	SizeScale SizeRule = "scale"
	// SizeAny: the output size depends on more than the input size (say,
	// padding to a multiple of 8, or a size parameter) and is known only
	// when the model runs (Height and Width are 0). The planner cannot
	// check a fixed-size stage after it; the host checks what that stage
	// receives at run time.
	SizeAny SizeRule = "any"
)

// Size is an output size rule: a [SizeRule] and, for SizeScale, its factor
// Num/Den. Build one with [SameSize], [FixedSize], [ScaleSize] or [AnySize].
type Size struct {
	Rule SizeRule `json:"rule,omitempty"`
	// Num and Den are the factor of SizeScale (both > 0); zero otherwise.
	Num int `json:"num,omitempty"`
	Den int `json:"den,omitempty"`
}

// The size rules as values, for ImageSpec.Size literals.
var (
	SameSize  = Size{Rule: SizeSame}
	FixedSize = Size{Rule: SizeFixed}
	AnySize   = Size{Rule: SizeAny}
)

// ScaleSize is the rule "each dimension times num/den": ScaleSize(2, 1)
// doubles the size, ScaleSize(1, 2) halves it.
func ScaleSize(num, den int) Size { return Size{Rule: SizeScale, Num: num, Den: den} }

// String is the rule as `pipeline plugins describe` shows it: "same",
// "fixed", "any", "scale x2", "scale x1/2", "scale x3/2".
func (z Size) String() string {
	switch z.Rule {
	case SizeScale:
		if z.Den == 1 {
			return fmt.Sprintf("scale x%d", z.Num)
		}
		return fmt.Sprintf("scale x%d/%d", z.Num, z.Den)
	case "":
		return "unset"
	}
	return string(z.Rule)
}

// SizeRule returns the rule s follows as an output, with the zero Size
// resolved as plugins meant it before Size existed: SizeFixed when Height
// and Width are both set, SizeSame when both are 0. It returns the zero
// Size for the old mixed form (one of them set), which [ImageSpec.OutSize]
// resolves per dimension.
func (s *ImageSpec) SizeRule() Size {
	if s.Size.Rule != "" {
		return s.Size
	}
	switch {
	case s.Height > 0 && s.Width > 0:
		return FixedSize
	case s.Height == 0 && s.Width == 0:
		return SameSize
	}
	return Size{}
}

// OutSize returns the height and width of the output s declares for an
// input of inH x inW, where 0 means unknown (on either side): an unknown
// input gives an unknown output unless the size is fixed, and SizeAny is
// always unknown.
func (s *ImageSpec) OutSize(inH, inW int) (h, w int) {
	z := s.SizeRule()
	switch z.Rule {
	case SizeSame:
		return inH, inW
	case SizeFixed:
		return s.Height, s.Width
	case SizeScale:
		return scaleDim(inH, z), scaleDim(inW, z)
	case SizeAny:
		return 0, 0
	}
	// The old mixed form: a dimension given is fixed, a 0 one the input's.
	h, w = s.Height, s.Width
	if h == 0 {
		h = inH
	}
	if w == 0 {
		w = inW
	}
	return h, w
}

func scaleDim(d int, z Size) int {
	if d <= 0 || z.Num <= 0 || z.Den <= 0 {
		return 0
	}
	return d * z.Num / z.Den
}

// CheckOutSize reports an output of gotH x gotW for an input of inH x inW
// (0: unknown) that breaks the size rule of s, naming the rule and the
// size it implies; nil when the output keeps it.
func (s *ImageSpec) CheckOutSize(inH, inW, gotH, gotW int) error {
	wantH, wantW := s.OutSize(inH, inW)
	if (wantH == 0 || wantH == gotH) && (wantW == 0 || wantW == gotW) {
		return nil
	}
	z := s.SizeRule()
	rule := z.String()
	switch z.Rule {
	case SizeFixed:
		rule = fmt.Sprintf("fixed %dx%d", s.Width, s.Height)
	case "":
		rule = fmt.Sprintf("%dx%d (0: same as input)", s.Width, s.Height)
	}
	input := fmt.Sprintf(" for a %dx%d input", inW, inH)
	if inH == 0 && inW == 0 {
		input = ""
	}
	return fmt.Errorf("output is %dx%d%s (WxH), expected %dx%d: the preset declares output size %s",
		gotW, gotH, input, orDim(wantW, gotW), orDim(wantH, gotH), rule)
}

func orDim(want, got int) int {
	if want == 0 {
		return got
	}
	return want
}

// LatentSpec is a latent-space contract: vectors of Dim values in Space.
type LatentSpec struct {
	Space string `json:"space,omitempty"`
	Dim   int    `json:"dim,omitempty"`
}

// Type is the type of a [Param] value.
type Type string

// Parameter types. A List accepts a single value of its element type as a
// one-element list. An Object with OneOf set must have exactly one field
// (used for lists of operations such as preprocess steps).
const (
	String Type = "string"
	Int    Type = "int"
	Float  Type = "float"
	Bool   Type = "bool"
	List   Type = "list"
	Object Type = "object"
)

// Param declares one parameter: its type, default, allowed range or enum, and
// documentation. Declared once, it drives validation, docs and JSON Schema.
type Param struct {
	Name string `json:"name,omitempty"`
	Type Type   `json:"type,omitempty"`
	Doc  string `json:"doc,omitempty"`
	// Default is used when the parameter is absent (nil: no default).
	// Its Go type follows the value mapping of [Params].
	Default any `json:"default,omitempty"`
	// Required parameters have no default and must be given.
	Required bool `json:"required,omitempty"`
	// Min and Max bound an Int or Float (inclusive); nil means unbounded.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// Enum lists the allowed values of a String. On a List it lists special
	// string values accepted instead of a list (e.g. "each").
	Enum []string `json:"enum,omitempty"`
	// Elem is the element type of a List.
	Elem *Param `json:"elem,omitempty"`
	// Fields are the members of an Object.
	Fields []Param `json:"fields,omitempty"`
	// OneOf makes an Object a choice: exactly one of Fields must be set.
	OneOf bool `json:"one_of,omitempty"`
	// Pattern is an RE2 regular expression (Go's regexp syntax) that a
	// String must match as a whole (it is anchored at both ends). The
	// host checks it when it validates a pipeline, so a bad value is
	// reported at its file position instead of failing the plugin's Load.
	// The JSON Schema carries it for editors, whose regular expressions
	// are ECMA-262: keep to the syntax both share (no (?i) flags or \pL
	// classes).
	Pattern string `json:"pattern,omitempty"`
	// Format names a well-known form a String must have (see [Format]);
	// checked like Pattern. Both may be set: the value must satisfy both.
	Format Format `json:"format,omitempty"`
}

// Format is a named form of string values that the SDK knows how to check,
// for what a regular expression expresses poorly or unreadably.
type Format string

// The formats a [Param] may declare.
const (
	// FormatColor: a colour "#rgb" or "#rrggbb" in hexadecimal digits.
	FormatColor Format = "color"
	// FormatDuration: a Go duration such as "300ms", "1.5s" or "2h45m"
	// (time.ParseDuration).
	FormatDuration Format = "duration"
	// FormatImage: an image file, such as an inpainting mask. In a
	// pipeline it is a path, relative to the pipeline's folder; the host
	// reads the file when it validates the pipeline (a missing file, an
	// undecodable one or, on a stage that reads images, one whose size
	// differs from the stage's input images is an error at the value's
	// position) and hands the plugin the file's bytes as a data URL, so a
	// plugin never opens a path a pipeline names. Read it with
	// [DecodeImageParam].
	FormatImage Format = "image"
)

// Formats lists every format in a stable order.
var Formats = []Format{FormatColor, FormatDuration, FormatImage}

// Bound returns a pointer to v, for Param.Min and Param.Max literals.
func Bound(v float64) *float64 { return &v }
