package ops

import (
	"fmt"
	"math"
	"sort"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A compiled graph keeps one output buffer per op node for as long as the
// machine lives, although most values are dead once their last consumer
// has run. PlanMemory gives every custom op node of a graph a place in one
// shared arena instead, where nodes whose values are never alive at the
// same time overlap. The tape machine runs the nodes in a fixed order, so
// the lifetimes are known when the program is compiled.

// cached is an op that keeps its output in an outCache, so the planner can
// place that output.
type cached interface{ outputCache() *outCache }

func (op actOp) outputCache() *outCache      { return op.buf }
func (op actGradOp) outputCache() *outCache  { return op.buf }
func (op addOp) outputCache() *outCache      { return op.buf }
func (op bceGradOp) outputCache() *outCache  { return op.buf }
func (op bnOp) outputCache() *outCache       { return op.buf }
func (op catOp) outputCache() *outCache      { return op.buf }
func (op chanOp) outputCache() *outCache     { return op.buf }
func (op convOp) outputCache() *outCache     { return op.buf }
func (op convBiasOp) outputCache() *outCache { return op.buf }
func (op gnOp) outputCache() *outCache       { return op.buf }
func (op l1GradOp) outputCache() *outCache   { return op.buf }
func (op maskOp) outputCache() *outCache     { return op.buf }
func (op mmOp) outputCache() *outCache       { return op.buf }
func (op mseGradOp) outputCache() *outCache  { return op.buf }
func (op ncOp) outputCache() *outCache       { return op.buf }
func (op padOp) outputCache() *outCache      { return op.buf }
func (op upOp) outputCache() *outCache       { return op.buf }

// planMu guards the planning fields of every outCache (slot, owner,
// shared): a cache may be reached from several graphs when an op value is
// reused, and programs are compiled and run on different goroutines.
var planMu sync.Mutex

// slotAlign keeps every planned buffer on a 64-byte boundary, as a fresh
// allocation of that size would be.
const slotAlign = 16

// Arena is the planned output memory of one compiled program: one slice
// holding every planned node output at its offset. An arena serves its
// ops only between Begin and End, so an op run by any other machine falls
// back to its own buffer.
type Arena struct {
	buf     []float32
	slots   []*slot
	running bool
	last    int   // position of the last planned op run in this run
	err     error // first plan violation of this run
	poison  bool
	total   int // sum of planned outputs, in elements
}

// slot is one node's place in its arena.
type slot struct {
	arena    *Arena
	cache    *outCache
	node     *G.Node
	pos, end int // execution position and last use
	off, n   int // offset and size in arena.buf
	d        *tensor.Dense
}

// PlanOptions tune PlanMemory.
type PlanOptions struct {
	// Poison fills each planned buffer with NaN before its op writes it, so
	// an op that reads its previous output, or a value read after its
	// planned lifetime, shows up as NaN (a debugging aid).
	Poison bool
}

// PlanMemory compiles g for a tape machine and plans the outputs of its
// custom op nodes; the machine must be created with the returned option
// (G.NewTapeMachine(g, vmOpt)), so it runs the program that was analysed.
//
// The machine executes the nodes in the reverse of G.Sort(g) (gorgonia's
// compiler emits its instructions in that order) and skips nodes that value
// numbering merged into an earlier twin. A node's value lives from its
// execution to its last consumer's. Values produced by gorgonia's own ops
// are taken to alias every input (they may return a view of one, or
// overwrite it in place) and the value last held in their register (they
// may write into it as preallocated memory), so those live as long as
// they do. Values that must outlive the run are read with G.Read, which
// copies, and a read node is a consumer like any other.
//
// An op node reached by two programs, or an op value shared by two nodes,
// is not planned: its op then allocates a fresh output on every run.
func PlanMemory(g *G.ExprGraph, opt PlanOptions) (a *Arena, vmOpt G.VMOpt, err error) {
	prog, locMap, err := G.Compile(g)
	if err != nil {
		return nil, nil, fmt.Errorf("ops: memory plan: %w", err)
	}
	// Registers are gorgonia's unexported type, comparable behind any.
	regs := make(map[*G.Node]any, len(locMap))
	for n, r := range locMap {
		regs[n] = r
	}
	sorted, err := G.Sort(g)
	if err != nil {
		return nil, nil, fmt.Errorf("ops: memory plan: %w", err)
	}
	for i, j := 0, len(sorted)-1; i < j; i, j = i+1, j-1 {
		sorted[i], sorted[j] = sorted[j], sorted[i]
	}
	// Value numbering as in gorgonia's dataflow analysis: leaves first,
	// then the first node of each hash in execution order.
	uniq := make(map[uint32]*G.Node)
	for _, n := range g.AllNodes() {
		if len(children(g, n)) == 0 {
			if _, ok := uniq[n.Hashcode()]; !ok {
				uniq[n.Hashcode()] = n
			}
		}
	}
	rep := make(map[*G.Node]*G.Node, len(sorted))
	for _, n := range sorted {
		h := n.Hashcode()
		if r, ok := uniq[h]; ok {
			rep[n] = r
		} else {
			uniq[h] = n
			rep[n] = n
		}
	}

	a = &Arena{poison: opt.Poison}
	planMu.Lock()
	defer planMu.Unlock()
	owned := make(map[*outCache]*slot)
	alias := make(map[*G.Node][]*slot, len(sorted))
	lastWriter := make(map[any]*G.Node)
	for i, n := range sorted {
		if rep[n] != n {
			continue
		}
		kids := children(g, n)
		// Uses: every value this node reads lives at least until now.
		var from []*slot
		for _, c := range kids {
			for _, s := range alias[rep[c]] {
				s.end = max(s.end, i)
				from = appendUnique(from, s)
			}
		}
		reg, hasReg := regs[n]
		var s *slot
		if len(kids) > 0 {
			s = a.claim(n, i, owned)
		}
		if s != nil {
			alias[n] = []*slot{s}
		} else if n.Op() != nil && len(kids) > 0 {
			if prev := lastWriter[reg]; hasReg && prev != nil {
				for _, s := range alias[prev] {
					from = appendUnique(from, s)
				}
			}
			alias[n] = from
		}
		if hasReg {
			lastWriter[reg] = n
		}
	}
	a.layout()
	return a, G.WithPrecompiled(prog, locMap), nil
}

// children are the inputs of n (gorgonia's edges run from a node to its
// inputs).
func children(g *G.ExprGraph, n *G.Node) []*G.Node {
	it := g.From(n.ID())
	if it == nil {
		return nil
	}
	var out []*G.Node
	for it.Next() {
		out = append(out, it.Node().(*G.Node))
	}
	return out
}

func appendUnique(ss []*slot, s *slot) []*slot {
	for _, t := range ss {
		if t == s {
			return ss
		}
	}
	return append(ss, s)
}

// claim gives node n, run at position i, a slot when its op keeps a
// float32 output in a cache nobody else holds; a cache found twice (an op
// value on two nodes, or a node in two programs) is marked shared and
// planned by nobody.
func (a *Arena) claim(n *G.Node, i int, owned map[*outCache]*slot) *slot {
	op, ok := n.Op().(cached)
	if !ok {
		return nil
	}
	c := op.outputCache()
	if c == nil || c.shared {
		return nil
	}
	if dt, err := dtypeOfNode(n); err != nil || dt != tensor.Float32 {
		return nil
	}
	size := n.Shape().TotalSize()
	if size <= 0 {
		return nil
	}
	if c.slot != nil || owned[c] != nil {
		c.shared = true
		if s := c.slot; s != nil {
			s.cache = nil
		}
		if s := owned[c]; s != nil {
			s.cache = nil
		}
		c.slot = nil
		return nil
	}
	s := &slot{arena: a, cache: c, node: n, pos: i, end: i, n: size}
	owned[c] = s
	a.slots = append(a.slots, s)
	return s
}

func dtypeOfNode(n *G.Node) (dt tensor.Dtype, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ops: no dtype for %v", n)
		}
	}()
	return n.Dtype(), nil
}

// layout places the slots: the largest first, each at the lowest aligned
// offset that no slot alive at an overlapping time occupies (first fit by
// decreasing size, a standard heuristic for interval packing), then hands
// them to their caches.
func (a *Arena) layout() {
	var live []*slot
	for _, s := range a.slots {
		if s.cache != nil {
			live = append(live, s)
		}
	}
	a.slots = live
	order := append([]*slot(nil), live...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].n > order[j].n })
	type span struct{ lo, hi int }
	var placed []*slot
	size := 0
	for _, s := range order {
		var busy []span
		for _, t := range placed {
			if t.pos <= s.end && s.pos <= t.end {
				busy = append(busy, span{t.off, t.off + t.n})
			}
		}
		sort.Slice(busy, func(i, j int) bool { return busy[i].lo < busy[j].lo })
		off := 0
		for _, b := range busy {
			if off+s.n <= b.lo {
				break
			}
			off = max(off, alignUp(b.hi))
		}
		s.off = off
		size = max(size, off+s.n)
		a.total += s.n
		placed = append(placed, s)
	}
	a.buf = make([]float32, alignUp(size))
	for _, s := range live {
		s.cache.slot = s
		s.cache.owner = s.node
	}
}

func alignUp(n int) int { return (n + slotAlign - 1) / slotAlign * slotAlign }

// Bytes is the size of the arena.
func (a *Arena) Bytes() int64 { return int64(len(a.buf)) * 4 }

// OutputBytes is the sum of the planned outputs' sizes: what their ops
// would hold without the plan.
func (a *Arena) OutputBytes() int64 { return int64(a.total) * 4 }

// PeakLiveBytes is the most output bytes alive at one time: no layout of
// these lifetimes can be smaller, so Bytes over it is the packing's waste.
func (a *Arena) PeakLiveBytes() int64 {
	delta := map[int]int{}
	for _, s := range a.slots {
		delta[s.pos] += s.n
		delta[s.end+1] -= s.n
	}
	pos := make([]int, 0, len(delta))
	for p := range delta {
		pos = append(pos, p)
	}
	sort.Ints(pos)
	live, peak := 0, 0
	for _, p := range pos {
		live += delta[p]
		peak = max(peak, live)
	}
	return int64(peak) * 4
}

// Nodes is the number of planned nodes.
func (a *Arena) Nodes() int { return len(a.slots) }

// Begin starts a run: until End, planned ops take their outputs from the
// arena.
func (a *Arena) Begin() {
	a.running, a.last, a.err = true, -1, nil
}

// End finishes a run and reports a plan violation seen during it (an op
// run out of the planned order, or an output of an unplanned size), whose
// results cannot be trusted.
func (a *Arena) End() error {
	a.running = false
	return a.err
}

// Release gives the planned caches back to their ops, which then keep
// their own buffers again.
func (a *Arena) Release() {
	planMu.Lock()
	defer planMu.Unlock()
	for _, s := range a.slots {
		if s.cache != nil && s.cache.slot == s {
			s.cache.slot, s.cache.owner = nil, nil
		}
	}
	a.slots, a.buf = nil, nil
}

// take returns the slot's memory as a tensor of the shape, or false when
// the arena is not running or the request does not fit the plan.
func (s *slot) take(shape []int) (*tensor.Dense, bool) {
	a := s.arena
	if !a.running {
		return nil, false
	}
	if tensor.Shape(shape).TotalSize() != s.n {
		if a.err == nil {
			a.err = fmt.Errorf("ops: memory plan: %v wrote shape %v, planned %d values", s.node, shape, s.n)
		}
		return nil, false
	}
	if s.pos <= a.last && a.err == nil {
		a.err = fmt.Errorf("ops: memory plan: %v ran out of the planned order", s.node)
	}
	a.last = s.pos
	mem := a.buf[s.off : s.off+s.n : s.off+s.n]
	// Gorgonia's own ops may reshape or transpose a value in place, so the
	// header is rebuilt unless it is still a plain view of the slot.
	if s.d == nil || s.d.IsView() || !s.d.Shape().Eq(tensor.Shape(shape)) || &s.d.Data().([]float32)[0] != &mem[0] {
		s.d = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(mem))
	}
	if a.poison {
		nan := float32(math.NaN())
		for i := range mem {
			mem[i] = nan
		}
	}
	return s.d, true
}
