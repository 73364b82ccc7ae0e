package cyclegan

import (
	"bytes"
	"context"
	"testing"

	"github.com/genpipe/genpipe/internal/typeset"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// digitBatches makes n batches of size per: typeset digits as the first
// role, and MNIST-like second-role images (typeset digits of another seed
// and jitter, thickened: a stand-in domain B that needs no data files).
func digitBatches(t testing.TB, n, per int, second string, paired bool) []*sdk.Batch {
	t.Helper()
	a, err := typeset.NewSet(nil, typeset.DefaultJitter, 1)
	if err != nil {
		t.Fatal(err)
	}
	bj := typeset.DefaultJitter
	bj.Weight = typeset.Range{Lo: 0.8, Hi: 1.2}
	b, err := typeset.NewSet([]string{"goitalic"}, bj, 2)
	if err != nil {
		t.Fatal(err)
	}
	item := func(s *typeset.Set, i int) ([]uint8, int) {
		img, l, err := s.Item(i)
		if err != nil {
			t.Fatal(err)
		}
		return img.Pix, l
	}
	var out []*sdk.Batch
	for k := 0; k < n; k++ {
		var pa, pb []uint8
		var la, lb []int
		var seeds []uint64
		for j := 0; j < per; j++ {
			i := k*per + j
			x, l := item(a, i)
			pa, la = append(pa, x...), append(la, l)
			if !paired {
				i = 7*i + 3 // another order: unpaired
			}
			y, m := item(b, i)
			pb, lb = append(pb, y...), append(lb, m)
			seeds = append(seeds, uint64(i))
		}
		first := &sdk.Batch{Tensor: sdk.FromUint8(pa, per, 1, Size, Size), Labels: la, Seeds: seeds}
		first.Inputs = map[string]*sdk.Batch{second: {Tensor: sdk.FromUint8(pb, per, 1, Size, Size), Labels: lb, Seeds: seeds}}
		out = append(out, first)
	}
	return out
}

func trainRun(t *testing.T, preset string, params map[string]any, batches []*sdk.Batch, stopAt int, resume []byte) *sdktest.Session {
	t.Helper()
	desc := New().Describe()
	spec := desc.Capability(sdk.CapTrain)
	ps, errs := sdk.CheckParams(spec.Params, params, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s := &sdktest.Session{Batches: batches, StopAt: stopAt,
		Req: sdk.TrainRequest{Preset: preset, Params: ps, Seed: 5, Epochs: 1, Steps: len(batches), CheckpointEvery: 3, SampleEvery: 3, Resume: resume}}
	s.EvalBatches = batches[:1]
	if resume != nil {
		s.Pos = stopAt
		s.StopAt = 0
	}
	if err := New().(*Plugin).Train(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTrainResumesExactly trains a small CycleGAN and a small pix2pix for
// six steps straight, and again stopped after three and resumed from the
// checkpoint: the final weights must be the same bytes (the history pools,
// the RNG and Adam's moments all travel in the checkpoint).
func TestTrainResumesExactly(t *testing.T) {
	for _, c := range []struct {
		preset, second string
		paired         bool
	}{{"cyclegan", "b", false}, {"pix2pix", "target", true}} {
		t.Run(c.preset, func(t *testing.T) {
			params := map[string]any{"channels_a": 1, "channels_b": 1, "ngf": 4, "blocks": 1, "downs": 2, "d_layers": 2, "pool": 4, "log_every": 2}
			batches := digitBatches(t, 6, 4, c.second, c.paired)
			full := trainRun(t, c.preset, params, batches, 0, nil)
			half := trainRun(t, c.preset, params, batches, 3, nil)
			if half.Checkpoint == nil {
				t.Fatal("no checkpoint after 3 steps")
			}
			resumed := trainRun(t, c.preset, params, batches, 3, half.Checkpoint)
			if full.Final == nil || !bytes.Equal(full.Final, resumed.Final) {
				t.Error("the resumed run's final weights differ from the uninterrupted run's")
			}
			var grids int
			for _, ev := range full.Events {
				if ev.Samples != nil {
					grids++
					want := 6
					if c.preset == "pix2pix" {
						want = 3
					}
					if ev.SampleColumns != want || ev.Samples.Shape[0] != 4*want {
						t.Errorf("sample grid of %v in %d columns, want %d items in %d columns", ev.Samples.Shape, ev.SampleColumns, 4*want, want)
					}
				}
			}
			if grids < 2 {
				t.Errorf("%d sample grids, want one before training and every 3 steps", grids)
			}
		})
	}
}

func TestTrainNeedsBothRoles(t *testing.T) {
	batches := digitBatches(t, 1, 2, "target", false) // a cyclegan needs "b"
	desc := New().Describe()
	spec := desc.Capability(sdk.CapTrain)
	ps, _ := sdk.CheckParams(spec.Params, map[string]any{"channels_a": 1, "channels_b": 1, "ngf": 4, "blocks": 1}, "")
	s := &sdktest.Session{Batches: batches, Req: sdk.TrainRequest{Preset: "cyclegan", Params: ps, Seed: 1, Epochs: 1, Steps: 1}}
	err := New().(*Plugin).Train(context.Background(), s)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(`no "b" images`)) {
		t.Errorf("training a cyclegan without role b: %v, want an error naming the missing role", err)
	}
}
