package job

import (
	"context"
	"fmt"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// node makes the executor stage of a plan stage: a host stage from its
// config, a model stage by loading its model.
func (b *builder) node(ctx context.Context, pn *plan.Stage) (*run.Task, error) {
	if pn.Config == nil {
		return b.modelNode(ctx, pn)
	}
	shard := ""
	if b.opt.ShardCount > 1 {
		shard = fmt.Sprintf("%d-of-%d", b.opt.ShardIndex, b.opt.ShardCount)
	}
	return pn.Config.Task(stages.Env{
		ID: pn.ID, BaseDir: b.plan.BaseDir, Workers: b.opt.Workers,
		Save: stages.SaveOptions{
			Overwrite: b.opt.Overwrite,
			Shard:     shard,
			Scores:    pn.Scores,
			Inputs:    pn.Inputs,
			Provenance: stages.ProvenanceInfo{
				Name: b.plan.Name, File: b.plan.File, SHA256: b.plan.SHA256, Seed: b.plan.Seed,
			},
		},
	})
}

func (b *builder) modelNode(ctx context.Context, pn *plan.Stage) (*run.Task, error) {
	ms := pn.Model
	p, err := b.m.Open(ctx, pluginhost.Ref{Name: ms.Model, Path: ms.Path, SHA256: ms.SHA256})
	if err != nil {
		return nil, err
	}
	if b.plan.Spec != nil {
		if pl := b.plan.Spec.Plugin(ms.Model); pl != nil && (pl.MaxItems > 0 || pl.MaxRSS > 0) {
			p.SetRecycle(pl.MaxItems, pl.MaxRSS)
		}
	}
	model, err := b.load(ctx, p, pn)
	if err != nil {
		return nil, err
	}
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
	if ms.PresetSpec != nil {
		mm.conform = stages.NewConformer(pn.ID, ms.Conform, ms.PresetSpec.Input)
		if ms.Restore {
			mm.conform = mm.conform.WithRestore()
		}
	}
	n := &run.Task{Map: mm, Batch: ms.Batch, Workers: b.opt.ModelWorkers}
	if pn.Kind == spec.Generate && len(pn.Inputs) == 0 {
		classes := 0
		if (ms.Each || ms.Random) && ms.PresetSpec != nil {
			classes = ms.PresetSpec.Classes
		}
		n.Source = stages.CountSource{Count: ms.Count, Labels: ms.Labels, Classes: classes, Random: ms.Random, Seed: b.plan.Seed, Stage: pn.ID}
	}
	return n, nil
}

// load loads the stage's model, or takes it from opt.Models when an
// earlier run of the plan left it there.
func (b *builder) load(ctx context.Context, p *pluginhost.Plugin, pn *plan.Stage) (*pluginhost.Model, error) {
	ms := pn.Model
	req := sdk.LoadRequest{Capability: pn.Kind.Capability(), Preset: ms.Preset, Weights: ms.Weights, Params: ms.Params}
	c := b.opt.Models
	if c == nil {
		model, err := p.Load(ctx, req)
		if err == nil {
			b.models = append(b.models, model)
		}
		return model, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.byStage[pn.ID]; m != nil {
		return m, nil
	}
	model, err := p.Load(ctx, req)
	if err != nil {
		return nil, err
	}
	if c.byStage == nil {
		c.byStage = map[string]*pluginhost.Model{}
	}
	c.byStage[pn.ID] = model
	return model, nil
}
