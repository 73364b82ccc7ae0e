package sdk

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
// output. Min and Max give the value range (0 and 255 for uint8 pixels).
type ImageSpec struct {
	Channels int     `json:"channels,omitempty"`
	Height   int     `json:"height,omitempty"`
	Width    int     `json:"width,omitempty"`
	DType    DType   `json:"dtype,omitempty"`
	Min      float32 `json:"min"`
	Max      float32 `json:"max"`
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
}

// Bound returns a pointer to v, for Param.Min and Param.Max literals.
func Bound(v float64) *float64 { return &v }
