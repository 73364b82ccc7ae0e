package job

import (
	"context"
	"fmt"
	"strconv"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/plugins"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

func (b *builder) node(ctx context.Context, pn *plan.Node) (*run.Node, error) {
	switch pn.Kind {
	case spec.Load:
		l, err := stages.NewLoader(pn.Host.(map[string]any), b.plan.BaseDir)
		if err != nil {
			return nil, err
		}
		return &run.Node{Source: loadSource{l}, Map: decode{l, pn.ID}, Workers: b.opt.Workers}, nil
	case spec.Preprocess:
		ops, _ := pn.Host.([]any)
		p, err := stages.NewPreprocess(ops, pn.ConsumerInput)
		if err != nil {
			return nil, err
		}
		return &run.Node{Map: preprocess{p, pn.ID, ops}, Workers: b.opt.Workers}, nil
	case spec.Save:
		shard := ""
		if b.opt.ShardCount > 1 {
			shard = fmt.Sprintf("%d-of-%d", b.opt.ShardIndex, b.opt.ShardCount)
		}
		s, err := stages.NewSaver(pn.Host.(map[string]any), b.plan.BaseDir, stages.SaveOptions{
			Overwrite: b.opt.Overwrite,
			Stage:     pn.ID,
			Shard:     shard,
			Provenance: stages.ProvenanceInfo{
				Name: b.plan.Name, File: b.plan.File, SHA256: b.plan.SHA256, Seed: b.plan.Seed,
			},
		})
		if err != nil {
			return nil, err
		}
		return &run.Node{Sink: saveSink{s}, Workers: b.opt.Workers}, nil
	}
	return b.modelNode(ctx, pn)
}

// loadSource lists files (cheaply, in order); decode reads them on workers.
type loadSource struct{ l *stages.Loader }

func (s loadSource) Items(ctx context.Context, emit func(item.Item) error) error {
	return s.l.Enumerate(ctx, func(e stages.Entry) error {
		return emit(item.Item{Index: e.Index, Name: e.Name, Source: e.Source, Label: e.Label, Raw: e})
	})
}

type decode struct {
	l     *stages.Loader
	stage string
}

func (d decode) Map(_ context.Context, in []item.Item) ([]item.Item, []error) {
	return perItem(in, func(it item.Item) (item.Item, error) {
		e, ok := it.Raw.(stages.Entry)
		if !ok {
			return it, fmt.Errorf("load: item %s was not listed by this stage", it.Name)
		}
		img, err := d.l.Decode(e)
		if err != nil {
			return it, err
		}
		it.Image, it.Raw = img, nil
		return it.With(item.Step{Stage: d.stage, Kind: "load"}), nil
	})
}

type preprocess struct {
	p     *stages.Preprocess
	stage string
	ops   []any
}

func (p preprocess) Map(_ context.Context, in []item.Item) ([]item.Item, []error) {
	return perItem(in, func(it item.Item) (item.Item, error) {
		px, err := it.WithPixels()
		if err != nil {
			return it, err
		}
		out, err := p.p.ApplyItem(px)
		if err != nil {
			return it, err
		}
		return out.With(item.Step{Stage: p.stage, Kind: "preprocess", Seed: it.Seed, Params: map[string]any{"ops": p.ops}}), nil
	})
}

// perItem applies fn to each item, collecting per-item errors.
func perItem(in []item.Item, fn func(item.Item) (item.Item, error)) ([]item.Item, []error) {
	out := make([]item.Item, len(in))
	errs := make([]error, len(in))
	for i, it := range in {
		out[i], errs[i] = fn(it)
	}
	return out, errs
}

type saveSink struct{ s *stages.Saver }

func (s saveSink) Done(it item.Item) bool { return s.s.Done(it) }
func (s saveSink) Write(ctx context.Context, it item.Item) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	it, err := it.WithPixels()
	if err != nil {
		return err
	}
	return s.s.Write(it)
}
func (s saveSink) Close() error { return s.s.Close() }

// countSource makes the items of a generate stage with count: names are the
// zero-padded index, labels follow the stage's labels list (cycled) or
// "each" (index modulo the number of classes).
type countSource struct {
	count   int
	labels  []int
	classes int
}

func (s countSource) Items(ctx context.Context, emit func(item.Item) error) error {
	width := max(5, len(strconv.Itoa(s.count-1)))
	for i := 0; i < s.count; i++ {
		label := -1
		switch {
		case len(s.labels) > 0:
			label = s.labels[i%len(s.labels)]
		case s.classes > 0:
			label = i % s.classes
		}
		if err := emit(item.Item{Index: i, Name: fmt.Sprintf("%0*d", width, i), Label: label}); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) modelNode(ctx context.Context, pn *plan.Node) (*run.Node, error) {
	ms := pn.Model
	p, err := b.m.Open(ctx, plugins.Ref{Name: ms.Model, Path: ms.Path, SHA256: ms.SHA256})
	if err != nil {
		return nil, err
	}
	model, err := p.Load(ctx, sdk.LoadRequest{Capability: pn.Kind.Capability(), Preset: ms.Preset, Weights: ms.Weights, Params: ms.Params})
	if err != nil {
		return nil, err
	}
	b.models = append(b.models, model)
	desc := p.Description()
	info := p.Info()
	mm := &modelMap{
		kind:   pn.Kind,
		model:  model,
		preset: ms.PresetSpec,
		step: item.Step{
			Stage: pn.ID, Kind: string(pn.Kind), Plugin: desc.Name, Version: desc.Version,
			SHA256: b.fileHash(info.Location), Preset: ms.Preset, Weights: ms.Weights, Params: ms.Params,
		},
	}
	n := &run.Node{Map: mm, Batch: ms.Batch, Workers: b.opt.ModelWorkers}
	if pn.Kind == spec.Generate && len(pn.Inputs) == 0 {
		classes := 0
		if ms.Each && ms.PresetSpec != nil {
			classes = ms.PresetSpec.Classes
		}
		n.Source = countSource{count: ms.Count, labels: ms.Labels, classes: classes}
	}
	return n, nil
}
