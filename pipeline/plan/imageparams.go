package plan

import (
	"bytes"
	"fmt"
	"image"
	"os"

	"github.com/genpipe/genpipe/sdk"
)

// imageParams reads the files a model stage's image parameters
// (sdk.FormatImage) name, checks that each decodes and, when the stage
// reads images of a known size (in), that it has that size, and replaces
// the path by the file's bytes as a data URL: the plugin gets the image,
// never a path to open (so a pipeline cannot point a plugin at a file the
// host did not read, and a job carries its masks with it).
func (b *builder) imageParams(bn *bnode, in *sdk.ImageSpec) {
	m := bn.n.Model
	if m == nil || m.Params == nil {
		return
	}
	var cs *sdk.CapabilitySpec
	if m.Desc != nil {
		cs = m.Desc.Capability(sdk.Capability(bn.st.Kind))
	}
	if cs == nil {
		return
	}
	for _, p := range cs.Params {
		if p.Type != sdk.String || p.Format != sdk.FormatImage {
			continue
		}
		v, ok := m.Params[p.Name].(string)
		if !ok || v == "" {
			continue
		}
		pos, kind := bn.st.ValuePos(p.Name), bn.st.Kind
		if b.opts.SkipFiles {
			continue
		}
		path := b.abs(v)
		data, err := os.ReadFile(path)
		if err != nil {
			b.errorf(pos, relHint, "%s.%s: %v", kind, p.Name, err)
			delete(m.Params, p.Name)
			continue
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
		if err == nil && format != "png" && format != "jpeg" && format != "gif" {
			err = fmt.Errorf("%s is not one of png, jpeg, gif", format)
		}
		if err != nil {
			b.errorf(pos, "give a png, jpeg or gif file", "%s.%s: %s: not an image: %v", kind, p.Name, path, err)
			delete(m.Params, p.Name)
			continue
		}
		if in != nil && in.Width > 0 && in.Height > 0 && (cfg.Width != in.Width || cfg.Height != in.Height) {
			b.errorf(pos, "", "%s.%s: %s is %dx%d (WxH), expected %dx%d, the size of the images the stage reads", kind, p.Name, path, cfg.Width, cfg.Height, in.Width, in.Height)
			delete(m.Params, p.Name)
			continue
		}
		m.Params[p.Name] = sdk.ImageDataURL("image/"+format, data)
	}
}
