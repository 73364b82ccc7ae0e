package layers

import (
	"fmt"
	"os"

	"github.com/genpipe/genpipe/nn/ops"
	G "gorgonia.org/gorgonia"
)

// PlanEnv names the environment variable that controls the memory plan of
// programs compiled after it is set: "off" keeps one buffer per op node
// (to bisect a suspected wrong result), "poison" fills each planned
// buffer with NaN before its op writes it (to catch a value read after its
// planned lifetime); anything else plans as usual.
const PlanEnv = "GENPIPE_NN_MEMPLAN"

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
	arena   *ops.Arena // nil when planning is off
}

// Compile finishes the builder's graph. When loss is non-nil, the gradients
// of loss with respect to params are added; outputs are nodes whose values
// are read after each run (loss is always the first output when set).
//
// The op outputs share one arena whose layout follows each value's
// lifetime in the machine's fixed execution order (see ops.PlanMemory and
// PlanEnv), so a program holds little more than its peak live set.
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
	var vmOpts []G.VMOpt
	if mode := os.Getenv(PlanEnv); mode != "off" {
		a, opt, err := ops.PlanMemory(b.G, ops.PlanOptions{Poison: mode == "poison"})
		if err != nil {
			return nil, fmt.Errorf("nn: %w", err)
		}
		p.arena, vmOpts = a, append(vmOpts, opt)
	}
	p.vm = G.NewTapeMachine(b.G, vmOpts...)
	return p, nil
}

// PlannedBytes is the size of the program's output arena, and the sum of
// the planned op outputs it holds (what they would take without the
// plan); both are 0 when planning is off.
func (p *Program) PlannedBytes() (arena, outputs int64) {
	if p.arena == nil {
		return 0, 0
	}
	return p.arena.Bytes(), p.arena.OutputBytes()
}

// Run executes the program once (forward, and backward for training).
func (p *Program) Run() error {
	defer p.vm.Reset()
	if p.arena != nil {
		p.arena.Begin()
	}
	err := p.vm.RunAll()
	if p.arena != nil {
		if perr := p.arena.End(); perr != nil && err == nil {
			err = fmt.Errorf("%w (%s=off runs without the plan)", perr, PlanEnv)
		}
	}
	if err != nil {
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

// Close releases the machine and the arena.
func (p *Program) Close() error {
	if p.arena != nil {
		p.arena.Release()
		p.arena = nil
	}
	return p.vm.Close()
}
