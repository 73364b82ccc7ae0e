package layers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/genpipe/genpipe/sdk/safetensors"
	"gorgonia.org/tensor"
)

// Param is one named tensor of a model: a trainable weight or a buffer
// (BatchNorm's running statistics) that is saved but not trained. Graphs
// bind Value directly, so every graph built from the same Params sees an
// update at once.
type Param struct {
	// Name is the PyTorch state_dict style path, e.g. "encoder.0.weight".
	Name string
	// Value holds the data (float32, the declared shape).
	Value *tensor.Dense
	// Buffer marks state that is saved but not trained.
	Buffer bool
	// Counter marks a one-element buffer that PyTorch stores as an int64
	// scalar (BatchNorm's num_batches_tracked): files hold it that way.
	Counter bool
}

// Data is the parameter's float32 storage.
func (p *Param) Data() []float32 { return p.Value.Data().([]float32) }

// Shape is the parameter's shape.
func (p *Param) Shape() []int { return []int(p.Value.Shape()) }

// Params is a model's ordered set of named parameters: its state_dict.
type Params struct {
	list   []*Param
	byName map[string]*Param
}

// NewParams returns an empty set.
func NewParams() *Params { return &Params{byName: map[string]*Param{}} }

// Add creates a zero parameter. Names must be unique; a duplicate is a
// programming error in the architecture, so it panics.
func (ps *Params) Add(name string, shape ...int) *Param {
	if _, dup := ps.byName[name]; dup {
		panic(fmt.Sprintf("nn: duplicate parameter %q", name))
	}
	p := &Param{Name: name, Value: tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))}
	ps.list = append(ps.list, p)
	ps.byName[name] = p
	return p
}

// AddBuffer creates a zero buffer (saved, not trained).
func (ps *Params) AddBuffer(name string, shape ...int) *Param {
	p := ps.Add(name, shape...)
	p.Buffer = true
	return p
}

// AddCounter creates a counter buffer: one value, saved as an int64
// scalar like PyTorch's num_batches_tracked.
func (ps *Params) AddCounter(name string) *Param {
	p := ps.AddBuffer(name, 1)
	p.Counter = true
	return p
}

// Get returns the parameter called name, or nil.
func (ps *Params) Get(name string) *Param { return ps.byName[name] }

// All returns every parameter and buffer in creation order.
func (ps *Params) All() []*Param { return ps.list }

// Trainable returns the parameters that are not buffers.
func (ps *Params) Trainable() []*Param {
	var out []*Param
	for _, p := range ps.list {
		if !p.Buffer {
			out = append(out, p)
		}
	}
	return out
}

// Count is the number of trainable scalars.
func (ps *Params) Count() int {
	n := 0
	for _, p := range ps.Trainable() {
		n += p.Value.Shape().TotalSize()
	}
	return n
}

// Tensors returns the parameters as safetensors entries (sharing data).
func (ps *Params) Tensors() []safetensors.Tensor {
	out := make([]safetensors.Tensor, 0, len(ps.list))
	for _, p := range ps.list {
		if p.Counter {
			b := make([]byte, 8)
			binary.LittleEndian.PutUint64(b, uint64(int64(p.Data()[0])))
			out = append(out, safetensors.Tensor{Name: p.Name, DType: "I64", Shape: []int{}, Data: b})
			continue
		}
		out = append(out, safetensors.F32(p.Name, p.Shape(), p.Data()))
	}
	return out
}

// Load copies weights from a safetensors file into the parameters. Every
// parameter must be present with its exact shape, and the file must hold
// nothing else: a file of another architecture is refused with every
// difference listed, before any value is changed.
func (ps *Params) Load(f *safetensors.File) error {
	want := make(map[string][]int, len(ps.list))
	counters := map[string]int64{}
	var problems []string
	rest := &safetensors.File{Metadata: f.Metadata}
	for _, p := range ps.list {
		if !p.Counter {
			want[p.Name] = p.Shape()
		}
	}
	for _, t := range f.Tensors {
		p := ps.byName[t.Name]
		if p == nil || !p.Counter {
			rest.Tensors = append(rest.Tensors, t)
			continue
		}
		if t.DType != "I64" || len(t.Shape) != 0 || len(t.Data) != 8 {
			problems = append(problems, fmt.Sprintf("%q: %s %v, want I64 []", t.Name, t.DType, t.Shape))
			continue
		}
		counters[t.Name] = int64(binary.LittleEndian.Uint64(t.Data))
	}
	for _, p := range ps.list {
		if _, ok := counters[p.Name]; p.Counter && !ok && f.Tensor(p.Name) == nil {
			problems = append(problems, fmt.Sprintf("%q: missing (want I64 [])", p.Name))
		}
	}
	if err := rest.Check(want); err != nil || len(problems) > 0 {
		if err != nil {
			problems = append(problems, err.Error())
		}
		return errors.New(strings.Join(problems, "; "))
	}
	for name, c := range counters {
		ps.byName[name].Data()[0] = float32(c)
	}
	for _, p := range ps.list {
		if p.Counter {
			continue
		}
		v, err := f.Tensor(p.Name).Float32()
		if err != nil {
			return fmt.Errorf("tensor %q: %w", p.Name, err)
		}
		copy(p.Data(), v)
	}
	return nil
}

// Names lists parameter names, sorted, for messages.
func (ps *Params) Names() string {
	n := make([]string, 0, len(ps.list))
	for _, p := range ps.list {
		n = append(n, p.Name)
	}
	slices.Sort(n)
	return strings.Join(n, ", ")
}
