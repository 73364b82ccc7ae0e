package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// contract checks what a stage receives against what it accepts and
// computes what it emits. Stages are visited in topological order, so the
// inputs' contracts are known; an unknown contract (a broken stage, or a
// value only known at run time) is never reported as a mismatch.
func (b *builder) contract(bn *bnode) {
	if !bn.ok {
		return
	}
	st, n := bn.st, bn.n
	switch st.Kind {
	case spec.Load:
		cfg, _ := n.Config.(*stages.LoadConfig)
		n.Out.Image = cfg.Image(b.baseDir, b.opts.SkipFiles)
	case spec.Save:
		for i := range bn.inputs {
			b.needImages(bn, i)
		}
	case spec.Preprocess:
		for i := range bn.inputs {
			b.needImages(bn, i)
		}
		ops, _ := n.Values.([]any)
		if b.feedsBrokenTrain(bn) {
			return // what training wants is unknown; the train section says why
		}
		var ambiguous bool
		n.ConsumerInput, ambiguous = b.consumerInput(bn, ops)
		errs := b.parseHost(bn, stages.LookupKind(string(st.Kind)), n.ConsumerInput)
		if len(errs) > 0 || ambiguous {
			return // output unknown: no follow-on mismatch errors
		}
		n.Out.Image = n.Config.(*stages.Preprocess).Output(mergeImages(bn))
	case spec.Encode, spec.Translate, spec.Denoise:
		m := n.Model
		var want *sdk.ImageSpec
		if m.PresetSpec != nil {
			want = m.PresetSpec.Input
		}
		for i := range bn.inputs {
			if got := b.needImages(bn, i); got != nil && want != nil && m.Conform == stages.ConformOff {
				b.conformOff(bn, i, want, got) // else the host conforms whatever comes
			}
		}
		if st.Kind == spec.Encode {
			b.imageParams(bn, received(want, mergeImages(bn)))
			n.Out.Latent = &sdk.LatentSpec{}
			if m.PresetSpec != nil && m.PresetSpec.Latent != nil {
				*n.Out.Latent = *m.PresetSpec.Latent
			}
			return
		}
		// What the model receives: what it declares (the host conforms
		// to it, or conform off made sure the input has it), the input
		// where it declares nothing.
		in := received(want, mergeImages(bn))
		b.imageParams(bn, in)
		n.Out.Image = outputImage(m, in)
		if m.Restore {
			// Each output takes its own input's size: the inputs' size
			// when they agree on one, else unknown.
			n.Out.Image.Width, n.Out.Image.Height = 0, 0
			if merged := mergeImages(bn); merged != nil {
				n.Out.Image.Width, n.Out.Image.Height = merged.Width, merged.Height
			}
		}
	case spec.Generate:
		m := n.Model
		b.imageParams(bn, nil)
		if len(bn.inputs) > 0 {
			b.latentInputs(bn)
		}
		if m.PresetSpec != nil && m.PresetSpec.LatentData != nil {
			// A model of latents (latent diffusion) emits them for a
			// decoder of their space to read.
			l := *m.PresetSpec.LatentData
			n.Out.Latent = &l
			return
		}
		n.Out.Image = outputImage(m, &sdk.ImageSpec{})
	}
}

// received is the image a model that declares want receives of the
// merged input got (either may be nil).
func received(want, got *sdk.ImageSpec) *sdk.ImageSpec {
	in := &sdk.ImageSpec{}
	if got != nil {
		in = got
	}
	if want != nil {
		in.Channels = or(want.Channels, in.Channels)
		in.Height = or(want.Height, in.Height)
		in.Width = or(want.Width, in.Width)
	}
	return in
}

func or(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// outputImage is what a model stage emits for input in: its declared
// output with channels "0: same as the input" filled in from in, and its
// size rule applied to in's size (unknown where in's is, and always for
// sdk.SizeAny: then a fixed-size stage downstream is checked at run time).
func outputImage(m *ModelStage, in *sdk.ImageSpec) *sdk.ImageSpec {
	out := &sdk.ImageSpec{}
	if m.PresetSpec != nil && m.PresetSpec.Output != nil {
		*out = *m.PresetSpec.Output
	}
	out.Channels = or(out.Channels, in.Channels)
	out.Height, out.Width = out.OutSize(in.Height, in.Width)
	// What travels along an edge is a size (0: unknown), not a rule.
	out.Size = sdk.Size{}
	return out
}

// stageText names a stage in contract messages, with its model and preset.
func stageText(bn *bnode) string {
	s := "stage " + bn.st.Name()
	if m := bn.n.Model; m != nil && m.Model != "" {
		s += fmt.Sprintf(" (model %q%s)", m.Model, presetText(m))
	}
	return s
}

// needImages returns input i's image contract; latents there are an error.
// It returns nil when the input's contract is unknown or not images.
func (b *builder) needImages(bn *bnode, i int) *sdk.ImageSpec {
	in := bn.inputs[i]
	if l := in.n.Out.Latent; l != nil {
		hint := "decode them to images with a generate stage first"
		b.errorf(bn.refs[i], hint, "%s needs images, got %s from %s", stageText(bn), latentText(l), in.st.Name())
		return nil
	}
	return in.n.Out.Image
}

// conformOff checks input i of a model stage with conform: off against
// the input its preset declares: the host passes items as they come, so a
// size that differs, or that is not known before running (a folder of
// images), would fail every item at run time. Reported at the conform key.
func (b *builder) conformOff(bn *bnode, i int, want, got *sdk.ImageSpec) {
	differs := func(w, g int) bool { return w > 0 && g > 0 && w != g }
	unknown := func(w, g int) bool { return w > 0 && g == 0 }
	sizeBad := differs(want.Width, got.Width) || differs(want.Height, got.Height)
	sizeAny := unknown(want.Width, got.Width) || unknown(want.Height, got.Height)
	chanBad := differs(want.Channels, got.Channels)
	if !sizeBad && !sizeAny && !chanBad {
		return
	}
	in := bn.inputs[i]
	var alt []string
	if (sizeBad || sizeAny) && want.Width > 0 && want.Height > 0 {
		alt = append(alt, fmt.Sprintf("- resize: {width: %d, height: %d}", want.Width, want.Height))
	}
	if chanBad && want.Channels == 1 {
		alt = append(alt, "- grayscale")
	}
	hint := "remove conform: off to let the host conform the images"
	why := "conform is off"
	if bn.n.Model.ConformExact {
		hint = "set conform: fit to let the host resize them"
		why = fmt.Sprintf("preset %q takes its input as it is (what it computes of a resized image is not the image's), so the host does not conform it", bn.n.Model.Preset)
	}
	if len(alt) > 0 {
		hint += ", or " + strings.Join(alt, " and ") + " in a preprocess stage before it"
	}
	pos := bn.n.Model.ConformPos
	if sizeAny && !sizeBad && !chanBad {
		b.errorf(pos, hint, "%s: input from %s may be any size but it takes %s; %s", stageText(bn), in.st.Name(), imagesText(want), why)
		return
	}
	b.errorf(pos, hint, "%s expects %s, got %s from %s%s; %s", stageText(bn), imagesText(want), imagesText(got), in.st.Name(), sizeRuleText(in), why)
}

// sizeRuleText explains the size of what a model stage emits when its
// preset scales the input's: ", which scales its input x2"; "" otherwise.
func sizeRuleText(bn *bnode) string {
	m := bn.n.Model
	if m == nil || m.PresetSpec == nil || m.PresetSpec.Output == nil {
		return ""
	}
	if z := m.PresetSpec.Output.Size; z.Rule == sdk.SizeScale {
		return ", which scales its input " + strings.TrimPrefix(z.String(), "scale ")
	}
	return ""
}

// latentInputs checks generate's inputs: latents of the space its preset
// decodes.
func (b *builder) latentInputs(bn *bnode) {
	m := bn.n.Model
	for i, in := range bn.inputs {
		out := in.n.Out
		if out.Image != nil {
			b.errorf(bn.refs[i], "set count: N to generate from noise, or encode the images first", "%s decodes latents, got %s from %s", stageText(bn), imagesText(out.Image), in.st.Name())
			continue
		}
		got := out.Latent
		if got == nil || m.PresetSpec == nil {
			continue
		}
		want := m.PresetSpec.Latent
		if want == nil {
			b.errorf(bn.refs[i], "set count: N to generate from noise", "%s cannot decode latents: it declares no latent space", stageText(bn))
			continue
		}
		hint := "encode and decode with the same model and preset"
		switch {
		case want.Space != "" && got.Space != "" && want.Space != got.Space:
			b.errorf(bn.refs[i], hint, "%s decodes latent space %q, got %s from %s", stageText(bn), want.Space, latentText(got), in.st.Name())
		case want.Dim > 0 && got.Dim > 0 && want.Dim != got.Dim:
			b.errorf(bn.refs[i], hint, "%s decodes %d-dim latents, got %s from %s", stageText(bn), want.Dim, latentText(got), in.st.Name())
		}
	}
}

// consumerInput returns the image contract declared by the model stages
// that read preprocess stage bn (nil when none declares one). Readers that
// declare different contracts make conform ambiguous, which is reported at
// the conform op.
func (b *builder) consumerInput(bn *bnode, ops []any) (in *sdk.ImageSpec, ambiguous bool) {
	var specs []*sdk.ImageSpec
	var who []string
	if in := b.trainConsumer(bn); in != nil {
		specs = append(specs, in)
		who = append(who, fmt.Sprintf("train wants %s", imageText(in)))
	}
	for _, r := range b.readers[bn] {
		m := r.n.Model
		if !r.ok || m == nil || m.PresetSpec == nil || m.PresetSpec.Input == nil || r.st.Kind == spec.Generate {
			continue
		}
		in := m.PresetSpec.Input
		if len(specs) == 0 || !sameShape(specs[0], in) {
			specs = append(specs, in)
			who = append(who, fmt.Sprintf("%s wants %s", r.st.Name(), imageText(in)))
		}
	}
	if len(specs) == 0 {
		return nil, false
	}
	if len(specs) > 1 {
		for i, op := range ops {
			if isOp(op, "conform") {
				ambiguous = true
				b.errorf(bn.st.KeyPos(fmt.Sprintf("[%d]", i)), "use one preprocess stage per consumer", "preprocess[%d].conform: the stages reading this one want different images (%s)", i, strings.Join(who, ", "))
			}
		}
	}
	return specs[0], ambiguous
}

func sameShape(a, b *sdk.ImageSpec) bool {
	return a.Channels == b.Channels && a.Height == b.Height && a.Width == b.Width
}

func isOp(op any, name string) bool {
	switch o := op.(type) {
	case string:
		return o == name
	case map[string]any:
		_, ok := o[name]
		return ok
	}
	return false
}

// mergeImages is the image contract of all of bn's inputs together: a
// dimension is known only when every input has the same known value. It is
// nil when an input's contract is unknown or not images.
func mergeImages(bn *bnode) *sdk.ImageSpec {
	var out *sdk.ImageSpec
	for _, in := range bn.inputs {
		img := in.n.Out.Image
		if img == nil {
			return nil
		}
		if out == nil {
			c := *img
			out = &c
			continue
		}
		if out.Channels != img.Channels {
			out.Channels = 0
		}
		if out.Height != img.Height {
			out.Height = 0
		}
		if out.Width != img.Width {
			out.Width = 0
		}
	}
	return out
}

// imageText describes an image contract: "3-channel 256x256", "28x28",
// "1-channel", "?x64", or "any" when nothing is known.
func imageText(s *sdk.ImageSpec) string {
	var parts []string
	if s.Channels > 0 {
		parts = append(parts, fmt.Sprintf("%d-channel", s.Channels))
	}
	if s.Width > 0 || s.Height > 0 {
		parts = append(parts, dimText(s.Width)+"x"+dimText(s.Height))
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}

// imagesText is imageText followed by "images" ("images" alone for any).
func imagesText(s *sdk.ImageSpec) string {
	if t := imageText(s); t != "any" {
		return t + " images"
	}
	return "images"
}

func dimText(d int) string {
	if d <= 0 {
		return "?"
	}
	return strconv.Itoa(d)
}

func latentText(l *sdk.LatentSpec) string {
	s := "latents"
	if l.Dim > 0 {
		s = fmt.Sprintf("%d-dim latents", l.Dim)
	}
	if l.Space != "" {
		s += fmt.Sprintf(" of space %q", l.Space)
	}
	return s
}
