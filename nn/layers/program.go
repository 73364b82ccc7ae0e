package layers

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Program is a compiled graph: built once, run many times on the same
// machine, so steady-state runs reuse every buffer. A training program
// also computes the gradients of a scalar loss with respect to the
// trainable parameters.
type Program struct {
	b       *Builder
	vm      G.VM
	params  []*Param
	grads   []*G.Node
	gradOut []G.Value
	outs    []*G.Node
	outVals []G.Value
}

// Compile finishes the builder's graph. When loss is non-nil, the gradients
// of loss with respect to params are added; outputs are nodes whose values
// are read after each run (loss is always the first output when set).
func Compile(b *Builder, loss *G.Node, params []*Param, outputs ...*G.Node) (*Program, error) {
	if b.err != nil {
		return nil, b.err
	}
	p := &Program{b: b, params: params}
	if loss != nil {
		wrt := b.ParamNodes(params)
		gs, err := G.Grad(loss, wrt...)
		if err != nil {
			return nil, fmt.Errorf("nn: gradients: %w", err)
		}
		p.grads = gs
		p.gradOut = make([]G.Value, len(gs))
		for i, g := range gs {
			// Read copies the value out during the run: a node's register
			// may be reused by later instructions.
			G.Read(g, &p.gradOut[i])
		}
		outputs = append([]*G.Node{loss}, outputs...)
	}
	for _, o := range outputs {
		if o == nil {
			return nil, fmt.Errorf("nn: nil output node")
		}
	}
	p.outs = outputs
	p.outVals = make([]G.Value, len(outputs))
	for i, o := range outputs {
		G.Read(o, &p.outVals[i])
	}
	p.vm = G.NewTapeMachine(b.G)
	return p, nil
}

// Run executes the program once (forward, and backward for training).
func (p *Program) Run() error {
	defer p.vm.Reset()
	if err := p.vm.RunAll(); err != nil {
		return fmt.Errorf("nn: run: %w", err)
	}
	return nil
}

// Grad returns the gradient of the loss for params[i] after Run.
func (p *Program) Grad(i int) []float32 { return p.gradOut[i].Data().([]float32) }

// Output returns output i's value after Run (0 is the loss for training
// programs).
func (p *Program) Output(i int) []float32 {
	switch v := p.outVals[i].(type) {
	case *G.F32:
		return []float32{float32(*v)}
	default:
		if f, ok := v.Data().(float32); ok {
			return []float32{f}
		}
		return v.Data().([]float32)
	}
}

// Scalar returns output i as a number (the loss).
func (p *Program) Scalar(i int) float64 { return float64(p.Output(i)[0]) }

// Close releases the machine.
func (p *Program) Close() error { return p.vm.Close() }
