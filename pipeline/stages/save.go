package stages

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/genpipe/genpipe/internal/atomicfile"
	"github.com/genpipe/genpipe/pipeline/blobstore"
	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

// ProvenanceInfo describes the run that made the images; it is recorded
// with every saved image.
type ProvenanceInfo struct {
	// Name is the pipeline's name.
	Name string `json:"name,omitempty"`
	// File is the pipeline file's path and SHA256 the hex digest of its bytes.
	File   string `json:"file,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Seed is the pipeline seed (after --seed).
	Seed uint64 `json:"seed"`
	// Host is the host program and version (e.g. "pipeline v0.1.0").
	Host string `json:"host,omitempty"`
}

// SaveOptions are the run-level settings of a save stage.
type SaveOptions struct {
	// Overwrite rewrites existing outputs; without it [Saver.Done] reports
	// items whose outputs all exist, so a rerun resumes.
	Overwrite bool
	// Stage is the save stage's id; {stage} falls back to it for items
	// without provenance.
	Stage string
	// Provenance is recorded with every image.
	Provenance ProvenanceInfo
	// Shard, when set (e.g. "1-of-3"), is added to the grid and animation
	// file names: each shard holds only its own items, and shards often
	// share one output folder, so one file name would keep just the last.
	Shard string
	// Scores are the score names the planner knows every item carries:
	// a CSV manifest has their columns even when no item reached it.
	Scores []string
	// Inputs are the ids of the stages the save reads, in the file's
	// order: a grid of several inputs shows an index's items in this
	// order, whatever order they arrive in.
	Inputs []string
}

// ProvenanceRecord is what a sidecar NAME.json (or the PNG tEXt chunk with
// keyword [ProvenanceKeyword]) holds for one saved image.
type ProvenanceRecord struct {
	Pipeline ProvenanceInfo `json:"pipeline"`
	// SaveStage is the id of the save stage that wrote the file.
	SaveStage string `json:"save_stage,omitempty"`
	// File is the image's path relative to the save dir.
	File   string `json:"file"`
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Source string `json:"source,omitempty"`
	// Label is absent for items without a label.
	Label *int `json:"label,omitempty"`
	// Stages are the item's provenance steps in order: each stage's kind,
	// plugin name/version/sha256, preset, weights, seed and parameters.
	Stages []item.Step `json:"stages"`
	// Scores are the item's per-item scores as the last stage attaching
	// each left them (each stage's own values are in its step).
	Scores map[string]float64 `json:"scores,omitempty"`
}

// ProvenanceKeyword is the tEXt keyword of the provenance chunk in PNGs
// saved with provenance: png.
const ProvenanceKeyword = "genpipe:provenance"

// Saver writes the items of one save stage. Write may be called from many
// goroutines at once.
type Saver struct {
	dir     string
	format  string // png, jpeg or gif
	tmpl    *nameTemplate
	quality int
	images  bool
	prov    string // sidecar, png or none
	// manifestFormat is jsonl, csv or "" (none); manifest its writer once
	// the folder is known.
	manifestFormat string
	manifest       *manifest
	grid           *gridSpec
	anim           *animSpec
	seqAnim        animSpec // delay and loop of sequence items' GIFs
	opt            SaveOptions

	// since is the filesystem time at which this run began (see runStart):
	// an existing output older than it is an earlier run's, a newer one this
	// run's own. The filesystem is thus the set of names written, and a
	// collision costs no memory per item.
	since time.Time

	// store holds the objects of a dir given as a blob URL (nil for a
	// folder; dir is then the URL without its query). A bucket has no
	// shared clock to compare with, so this run's objects carry its id
	// in their metadata instead (runKey): one with another id, or none,
	// is an earlier run's.
	store *blobstore.Store
	runID string

	mu      sync.Mutex
	records []record
	closed  bool

	// written counts the outputs this run wrote: an item's image with its
	// provenance sidecar (one output, written if either file was), the
	// grid, the animation; unchanged the ones it left as they were (an
	// earlier run's image and sidecar kept, a grid or animation identical
	// to the one on disk).
	written, unchanged atomic.Int64
}

// Files returns the number of outputs this run wrote and the number it
// left unchanged: an item's image (with its sidecar) is one, the grid and
// the animation one each (see [Saver.Close]). The job's summary reports
// these, not items, since a grid is one file for many items.
func (s *Saver) Files() (written, unchanged int) {
	return int(s.written.Load()), int(s.unchanged.Load())
}

// count records the outcome of writing one output file.
func (s *Saver) count(wrote bool) {
	if wrote {
		s.written.Add(1)
	} else {
		s.unchanged.Add(1)
	}
}

type gridSpec struct {
	columns, padding int
	file             string
	bg               color.NRGBA
}

type animSpec struct {
	file  string
	delay int
	// loop uses image/gif's LoopCount convention, as the YAML does: 0
	// forever, -1 once, n restarts n times.
	loop int
}

// record is one item for the grid and animation: its image when images are
// not written, else the file to read back at Close.
type record struct {
	index int
	input int // position of the item's stage in SaveOptions.Inputs
	name  string
	file  string
	img   image.Image
}

var formatExt = map[string]string{"png": ".png", "jpeg": ".jpg", "gif": ".gif"}

// CheckSave checks what sdk.CheckParams cannot: the name template's syntax
// and whether its literal parts leave dir, the grid and animation file names,
// provenance: png with a non-PNG format, and a save that writes nothing.
// params are CheckParams' output for [SaveParam]; error paths are relative
// to the stage mapping ("name", "grid.file").
func CheckSave(params map[string]any) []*sdk.ParamError {
	_, errs := parseSave(params)
	return errs
}

func parseSave(params map[string]any) (*Saver, []*sdk.ParamError) {
	p := Values(params)
	var errs []*sdk.ParamError
	add := func(path, format string, a ...any) *sdk.ParamError {
		e := &sdk.ParamError{Path: path, Msg: fmt.Sprintf(format, a...)}
		errs = append(errs, e)
		return e
	}
	s := &Saver{
		format:  orDefault(p.String("format"), "png"),
		quality: 95,
		images:  true,
		prov:    orDefault(p.String("provenance"), "sidecar"),
		seqAnim: animSpec{delay: 10},

		manifestFormat: p.String("manifest"),
	}
	if _, ok := params["quality"]; ok {
		s.quality = p.Int("quality")
	}
	if b, ok := params["images"].(bool); ok {
		s.images = b
	}
	if p.String("dir") == "" {
		add("dir", "dir is empty; name the output folder")
	} else if d := p.String("dir"); blobstore.IsURL(d) {
		if _, err := blobstore.Parse(d); err != nil {
			add("dir", "%v", err)
		}
	}
	if _, ok := formatExt[s.format]; !ok {
		add("format", "unknown format %q, expected png, jpeg or gif", s.format)
	}
	tmpl, err := parseTemplate(orDefault(p.String("name"), "{name}"))
	var he *hintError
	switch {
	case errors.As(err, &he):
		add("name", "%s", he.msg).Hint = he.hint
	case err != nil:
		add("name", "%v", err)
	default:
		if _, err := tmpl.render(tmplValues{name: "x", stage: "x"}); err != nil {
			add("name", "the file name %v", err).Hint = "file names are relative to dir and stay inside it"
		}
	}
	s.tmpl = tmpl
	if s.prov == "png" && s.format != "png" {
		add("provenance", "provenance: png needs format: png, got format %q", s.format).Hint = "use provenance: sidecar"
	}
	if g, ok := params["grid"].(map[string]any); ok {
		gp := Values(g)
		gs := &gridSpec{columns: 8, padding: 2, file: orDefault(gp.String("file"), "grid.png")}
		if _, ok := g["columns"]; ok {
			gs.columns = max(1, gp.Int("columns"))
		}
		if _, ok := g["padding"]; ok {
			gs.padding = max(0, gp.Int("padding"))
		}
		if f, err := cleanRel(gs.file); err != nil {
			add("grid.file", "%v", err).Hint = "a file name inside dir"
		} else if _, ok := extFormat(f); !ok {
			add("grid.file", "%q: expected a .png, .jpg or .gif file name", f)
		} else {
			gs.file = f
		}
		if gs.bg, err = parseColor(orDefault(gp.String("background"), "#ffffff")); err != nil {
			add("grid.background", "%v", err)
		}
		s.grid = gs
	}
	if a, ok := params["animation"].(map[string]any); ok {
		ap := Values(a)
		as := &animSpec{file: orDefault(ap.String("file"), "animation.gif"), delay: 10}
		if _, ok := a["delay"]; ok {
			as.delay = ap.Int("delay")
		}
		as.loop = ap.Int("loop")
		if f, err := cleanRel(as.file); err != nil {
			add("animation.file", "%v", err).Hint = "a file name inside dir"
		} else if path.Ext(strings.ToLower(f)) != ".gif" {
			add("animation.file", "%q: expected a .gif file name", f)
		} else {
			as.file = f
		}
		s.anim = as
		s.seqAnim = animSpec{delay: as.delay, loop: as.loop}
	}
	if s.grid != nil && s.anim != nil && s.grid.file == s.anim.file {
		add("animation.file", "%q is also the grid file", s.anim.file)
	}
	if s.manifestFormat != "" && !s.images {
		add("manifest", "a manifest lists the images saved, and images is false").Hint = "set images: true, or drop manifest"
	}
	if !s.images && s.grid == nil && s.anim == nil {
		add("images", "save writes nothing: images is false and there is no grid or animation").Hint = "set images: true, or add grid: {} or animation: {}"
	}
	return s, errs
}

func extFormat(name string) (string, bool) {
	switch strings.ToLower(path.Ext(name)) {
	case ".png":
		return "png", true
	case ".jpg", ".jpeg":
		return "jpeg", true
	case ".gif":
		return "gif", true
	}
	return "", false
}

// NewSaver prepares a save stage from its validated params; dir resolves
// against baseDir (the pipeline file's folder) and is created.
func NewSaver(params map[string]any, baseDir string, opt SaveOptions) (*Saver, error) {
	s, errs := parseSave(params)
	if len(errs) > 0 {
		return nil, fmt.Errorf("save: %w", joinParamErrors(errs))
	}
	return s.open(Values(params).String("dir"), baseDir, opt)
}

// open returns a new Saver with the settings parsed into s (which it does
// not change, so one parsed config can open many), writing into dir
// (resolved against baseDir and created).
func (s *Saver) open(dir, baseDir string, opt SaveOptions) (*Saver, error) {
	n := &Saver{format: s.format, tmpl: s.tmpl, quality: s.quality, images: s.images, prov: s.prov, seqAnim: s.seqAnim, opt: opt, manifestFormat: s.manifestFormat}
	if s.grid != nil {
		g := *s.grid
		n.grid = &g
	}
	if s.anim != nil {
		a := *s.anim
		n.anim = &a
	}
	s = n
	if blobstore.IsBlob(dir) {
		return s.openStore(dir, opt)
	}
	var err error
	s.dir = filepath.FromSlash(blobstore.LocalPath(dir))
	if !filepath.IsAbs(s.dir) {
		s.dir = filepath.Join(baseDir, s.dir)
	}
	if err = os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("save: dir %s: %w", s.dir, unwrapPath(err))
	}
	if opt.Shard != "" {
		if s.grid != nil {
			s.grid.file = shardName(s.grid.file, opt.Shard)
		}
		if s.anim != nil {
			s.anim.file = shardName(s.anim.file, opt.Shard)
		}
	}
	if s.since, err = runStart(s.dir); err != nil {
		return nil, fmt.Errorf("save: dir %s: %w", s.dir, unwrapPath(err))
	}
	if s.manifestFormat != "" {
		s.manifest = newManifest(s.dir, s.manifestFormat, opt.Shard, opt.Scores)
	}
	return s, nil
}

// openStore is open for a dir given as a blob URL.
func (s *Saver) openStore(dir string, opt SaveOptions) (*Saver, error) {
	loc, err := blobstore.Parse(dir)
	if err != nil {
		return nil, fmt.Errorf("save: dir: %w", err)
	}
	if s.store, err = blobstore.Open(context.Background(), loc); err != nil {
		return nil, fmt.Errorf("save: dir: %w", err)
	}
	s.dir = strings.TrimSuffix(s.store.URL(""), "/")
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("save: run id: %w", err)
	}
	s.runID = hex.EncodeToString(id[:])
	if opt.Shard != "" {
		if s.grid != nil {
			s.grid.file = shardName(s.grid.file, opt.Shard)
		}
		if s.anim != nil {
			s.anim.file = shardName(s.anim.file, opt.Shard)
		}
	}
	if s.manifestFormat != "" {
		s.manifest = newStoreManifest(s.store, s.runID, s.manifestFormat, opt.Shard, opt.Scores)
	}
	return s, nil
}

// runKey is the metadata key under which a blob object records the id of
// the run that wrote it.
const runKey = "genpipe-run"

// shardName turns "grid.png" into "grid.shard-1-of-3.png".
func shardName(file, shard string) string {
	ext := path.Ext(file)
	return strings.TrimSuffix(file, ext) + ".shard-" + shard + ext
}

// Dir is the resolved output folder.
func (s *Saver) Dir() string { return s.dir }

func (s *Saver) abs(rel string) string {
	if s.store != nil {
		return s.dir + "/" + rel
	}
	return filepath.Join(s.dir, filepath.FromSlash(rel))
}

// relOf is the path relative to dir of a file abs returned.
func (s *Saver) relOf(file string) string {
	if s.store != nil {
		return strings.TrimPrefix(file, s.dir+"/")
	}
	rel, err := filepath.Rel(s.dir, file)
	if err != nil {
		return file
	}
	return filepath.ToSlash(rel)
}

func (s *Saver) collects() bool { return s.grid != nil || s.anim != nil }

// Path returns the file an item is written to. A sequence item (with Frames)
// is always an animated .gif, whatever the format.
func (s *Saver) Path(it item.Item) (string, error) {
	rel, err := s.rel(it)
	if err != nil {
		return "", err
	}
	return s.abs(rel), nil
}

// inputOf is the position in the save's inputs of the stage that made the
// item (len(Inputs) when unknown).
func (s *Saver) inputOf(it item.Item) int {
	if n := len(it.Prov); n > 0 {
		if i := slices.Index(s.opt.Inputs, it.Prov[n-1].Stage); i >= 0 {
			return i
		}
	}
	return len(s.opt.Inputs)
}

func (s *Saver) rel(it item.Item) (string, error) {
	stage := s.opt.Stage
	if n := len(it.Prov); n > 0 && it.Prov[n-1].Stage != "" {
		stage = it.Prov[n-1].Stage
	}
	name, err := s.tmpl.render(tmplValues{name: it.Name, index: it.Index, label: it.Label, stage: stage})
	if err != nil {
		return "", fmt.Errorf("save: %s: file name %v", describe(&it), err)
	}
	ext := formatExt[s.format]
	if len(it.Frames) > 0 {
		ext = ".gif"
	}
	return name + ext, nil
}

// sidecar reports whether the item's provenance goes to NAME.json: always
// for provenance: sidecar, and for provenance: png when the file is a GIF.
func (s *Saver) sidecar(file string) bool {
	return s.prov == "sidecar" || s.prov == "png" && !strings.HasSuffix(file, ".png")
}

func sidecarPath(file string) string {
	return strings.TrimSuffix(file, filepath.Ext(file)) + ".json"
}

// Done reports whether all of the item's outputs exist from an earlier run
// (and Overwrite is off), so the executor can skip it; a file this run
// wrote never makes an item done. When it does, the item is recorded for
// the grid and animation, which Close then reads back from its file. With
// images: false nothing is ever done (the grid needs the pixels).
func (s *Saver) Done(it item.Item) bool {
	if s.opt.Overwrite || !s.images {
		return false
	}
	rel, err := s.rel(it)
	if err != nil {
		return false
	}
	file := s.abs(rel)
	if !s.earlier(file) || s.sidecar(file) && !s.earlier(sidecarPath(file)) {
		return false
	}
	if s.manifest != nil {
		s.manifest.skipped(manifestEntry(it, rel))
	}
	if s.collects() {
		s.mu.Lock()
		s.records = append(s.records, record{index: it.Index, input: s.inputOf(it), name: it.Name, file: file})
		s.mu.Unlock()
	}
	return true
}

// earlier reports whether p is a file written before this run.
func (s *Saver) earlier(p string) bool {
	if s.store != nil {
		meta, ok, err := s.store.Stat(context.Background(), s.relOf(p))
		return err == nil && ok && meta[runKey] != s.runID
	}
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.ModTime().Before(s.since)
}

// runStart returns a time of dir's filesystem clock that every file
// written there before the call is older than, and every file written
// after it is not: it makes a marker file, then rewrites it until its
// modification time moves past the first one (a tick of the clock, a few
// milliseconds on Linux; up to 3 s on coarse filesystems, after which
// a file of the same tick counts as this run's: an error, never an
// overwrite).
func runStart(dir string) (time.Time, error) {
	f, err := os.CreateTemp(dir, ".genpipe-run-*")
	if err != nil {
		return time.Time{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return time.Time{}, err
	}
	first := st.ModTime()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		if _, err := f.Write([]byte{0}); err != nil {
			return time.Time{}, err
		}
		if st, err = f.Stat(); err != nil {
			return time.Time{}, err
		}
		if st.ModTime().After(first) {
			return st.ModTime(), nil
		}
	}
	return first, nil
}

// Write saves one item: its image file and provenance, each atomically
// (see put), creating sub-folders. An output name this run already wrote
// (two items, inputs or save stages named alike) is an error for the item,
// and nothing is overwritten; an earlier run's file is kept unless
// Overwrite is set.
func (s *Saver) Write(it item.Item) error {
	if it.Image == nil && len(it.Frames) == 0 {
		return fmt.Errorf("save: %s has no image (a latent item?)", describe(&it))
	}
	if !s.images {
		if s.collects() {
			img := it.Image
			if img == nil {
				img = it.Frames[len(it.Frames)-1]
			}
			s.mu.Lock()
			s.records = append(s.records, record{index: it.Index, input: s.inputOf(it), name: it.Name, img: img})
			s.mu.Unlock()
		}
		return nil
	}
	rel, err := s.rel(it)
	if err != nil {
		return err
	}
	file := s.abs(rel)
	if s.grid != nil && rel == s.grid.file || s.anim != nil && rel == s.anim.file {
		return fmt.Errorf("save: %s: file name %s is the grid or animation file", describe(&it), rel)
	}
	data, err := s.encode(it)
	if err != nil {
		return fmt.Errorf("save: %s: %w", describe(&it), err)
	}
	if s.prov == "png" && !s.sidecar(file) {
		js, err := json.Marshal(s.provenance(it, rel))
		if err != nil {
			return fmt.Errorf("save: %s: provenance: %w", describe(&it), err)
		}
		if data, err = insertPNGText(data, ProvenanceKeyword, string(asciiJSON(js))); err != nil {
			return fmt.Errorf("save: %s: %w", describe(&it), err)
		}
	}
	wrote, err := s.put(file, data, s.opt.Overwrite)
	if err != nil {
		return fmt.Errorf("save: %s: %w", describe(&it), err)
	}
	if s.sidecar(file) {
		js, err := json.MarshalIndent(s.provenance(it, rel), "", "  ")
		if err != nil {
			return fmt.Errorf("save: %s: provenance: %w", describe(&it), err)
		}
		wroteSidecar, err := s.put(sidecarPath(file), append(js, '\n'), s.opt.Overwrite)
		if err != nil {
			return fmt.Errorf("save: %s: %w", describe(&it), err)
		}
		wrote = wrote || wroteSidecar
	}
	if s.manifest != nil {
		if err := s.manifest.add(manifestEntry(it, rel)); err != nil {
			return fmt.Errorf("save: %s: %w", describe(&it), err)
		}
	}
	s.count(wrote)
	if s.collects() {
		s.mu.Lock()
		s.records = append(s.records, record{index: it.Index, input: s.inputOf(it), name: it.Name, file: file})
		s.mu.Unlock()
	}
	return nil
}

func (s *Saver) provenance(it item.Item, rel string) *ProvenanceRecord {
	r := &ProvenanceRecord{
		Pipeline:  s.opt.Provenance,
		SaveStage: s.opt.Stage,
		File:      rel,
		Index:     it.Index,
		Name:      it.Name,
		Source:    it.Source,
		Stages:    it.Prov,
		Scores:    it.Scores,
	}
	if it.Label >= 0 {
		l := it.Label
		r.Label = &l
	}
	if r.Stages == nil {
		r.Stages = []item.Step{}
	}
	return r
}

func (s *Saver) encode(it item.Item) ([]byte, error) {
	var buf bytes.Buffer
	if len(it.Frames) > 0 {
		g := &gif.GIF{LoopCount: s.seqAnim.loop}
		for _, f := range it.Frames {
			g.Image = append(g.Image, toPaletted(f))
			g.Delay = append(g.Delay, s.seqAnim.delay)
			g.Disposal = append(g.Disposal, gif.DisposalBackground)
		}
		if err := gif.EncodeAll(&buf, g); err != nil {
			return nil, fmt.Errorf("encode gif: %w", err)
		}
		return buf.Bytes(), nil
	}
	if err := encodeImage(&buf, it.Image, s.format, s.quality); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// pngEncoder reuses zlib compressors across images: png.Encode allocates a
// ~1 MB one per call, which for small images costs ten times the encoding
// itself in allocation and garbage collection. The output is identical.
var pngEncoder = &png.Encoder{BufferPool: &pngPool{}}

type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}

func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

func encodeImage(buf *bytes.Buffer, img image.Image, format string, quality int) error {
	var err error
	switch format {
	case "jpeg":
		err = jpeg.Encode(buf, img, &jpeg.Options{Quality: quality})
	case "gif":
		err = gif.Encode(buf, toPaletted(img), nil)
	default:
		err = pngEncoder.Encode(buf, img)
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", format, err)
	}
	return nil
}

var grayPalette = func() color.Palette {
	p := make(color.Palette, 256)
	for i := range p {
		p[i] = color.Gray{Y: uint8(i)}
	}
	return p
}()

// toPaletted converts img for GIF: gray images exactly onto a 256-gray
// palette, others onto the Plan 9 palette with Floyd-Steinberg dithering.
func toPaletted(img image.Image) *image.Paletted {
	if p, ok := img.(*image.Paletted); ok {
		return p
	}
	b := img.Bounds()
	r := image.Rect(0, 0, b.Dx(), b.Dy())
	if isGray(img) {
		g := item.ToGray(img)
		p := image.NewPaletted(r, grayPalette)
		for y := 0; y < r.Dy(); y++ {
			copy(p.Pix[y*p.Stride:(y+1)*p.Stride], g.Pix[y*g.Stride:])
		}
		return p
	}
	p := image.NewPaletted(r, palette.Plan9)
	draw.FloydSteinberg.Draw(p, r, img, b.Min)
	return p
}

// put writes data to file atomically (internal/atomicfile), creating
// sub-folders. A file already there is judged by its age: one this run
// wrote (not older than the run) means two outputs have one name, an error
// that leaves it alone; an earlier run's is kept, or replaced when replace
// is set. Without replace the new file is hard-linked into place, so of
// two writers of one name exactly one wins, whatever the timing. wrote is
// false when an earlier run's file was kept.
func (s *Saver) put(file string, data []byte, replace bool) (wrote bool, err error) {
	if s.store != nil {
		return s.putObject(file, data, replace)
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create folder %s: %w", dir, unwrapPath(err))
	}
	f, err := atomicfile.Create(file, 0o644)
	if err != nil {
		return false, fmt.Errorf("write %s: %w", file, unwrapPath(err))
	}
	defer f.Abort()
	// One sync of the folder at Close instead of one per file: a crash
	// can lose the names of the last items (redone on resume), never
	// leave a partial file.
	f.DeferDirSync = true
	if _, err := f.Write(data); err != nil {
		return false, fmt.Errorf("write %s: %w", file, unwrapPath(err))
	}
	for try := 0; try < 3; try++ {
		err := f.CommitNew()
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("write %s: %w", file, unwrapPath(err))
		}
		st, err := os.Lstat(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile: try again
		}
		if err != nil {
			return false, fmt.Errorf("write %s: %w", file, unwrapPath(err))
		}
		if !st.ModTime().Before(s.since) || !st.Mode().IsRegular() {
			return false, s.collision(file)
		}
		if !replace {
			return false, nil // an earlier run's output: keep it
		}
		// Move the earlier run's file aside (one atomic step, so a
		// concurrent writer of this run is never the one removed), then
		// link the new one in.
		aside := f.Name() + ".old"
		if err := os.Rename(file, aside); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return false, fmt.Errorf("write %s: %w", file, unwrapPath(err))
		}
		if st, err := os.Lstat(aside); err == nil && !st.ModTime().Before(s.since) {
			os.Rename(aside, file) // another item of this run got there first
			return false, s.collision(file)
		}
		os.Remove(aside)
	}
	return false, s.collision(file)
}

// putObject is put for a blob store. An object is written whole or not
// at all (blobstore.Store.Write), but a store has no create-if-absent
// that every S3-compatible server honours, so two writers of one name
// that check at the same moment can both write: the later one wins. The
// names of one run differ unless the template makes them collide, which
// the check before the write reports in all but that race.
func (s *Saver) putObject(file string, data []byte, replace bool) (bool, error) {
	ctx := context.Background()
	rel := s.relOf(file)
	meta, ok, err := s.store.Stat(ctx, rel)
	if err != nil {
		return false, err
	}
	if ok {
		if meta[runKey] == s.runID {
			return false, s.collision(file)
		}
		if !replace {
			return false, nil // an earlier run's output: keep it
		}
	}
	if err := s.store.Write(ctx, rel, data, map[string]string{runKey: s.runID}); err != nil {
		return false, err
	}
	return true, nil
}

func (s *Saver) collision(file string) error {
	return fmt.Errorf("file name %s was already written by this run (by another item, input or save stage: make the names unique, e.g. with {index} or {stage}; nothing was overwritten)", s.relOf(file))
}

// Close writes the grid and the animation of all items in index order, each
// atomically. Items skipped as Done are read back from their files, so a
// resumed run's grid is complete. Close is a no-op the second time.
func (s *Saver) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	recs := s.records
	s.records = nil
	s.mu.Unlock()
	if s.store == nil {
		defer atomicfile.SyncDir(s.dir)
	}
	var errs []error
	if s.manifest != nil {
		if err := s.manifest.close(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("save: %w", err))
		}
	}
	if !s.collects() || len(recs) == 0 {
		return errors.Join(errs...)
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].index != recs[j].index {
			return recs[i].index < recs[j].index
		}
		if recs[i].input != recs[j].input {
			return recs[i].input < recs[j].input
		}
		return recs[i].name < recs[j].name
	})
	recs = dedupe(recs)
	sizes := make([]image.Point, len(recs))
	cell := image.Point{}
	for i, r := range recs {
		if r.img != nil {
			sizes[i] = r.img.Bounds().Size()
		} else {
			cfg, err := s.decodeConfig(r.file)
			if err != nil {
				return errors.Join(append(errs, fmt.Errorf("save: grid: %w", err))...)
			}
			sizes[i] = image.Pt(cfg.Width, cfg.Height)
		}
		cell.X, cell.Y = max(cell.X, sizes[i].X), max(cell.Y, sizes[i].Y)
	}
	var sheet *grid
	if s.grid != nil {
		sheet = newGrid(len(recs), s.grid.columns, s.grid.padding, cell, s.grid.bg)
	}
	var anim *gif.GIF
	if s.anim != nil {
		anim = &gif.GIF{LoopCount: s.anim.loop, Config: image.Config{Width: cell.X, Height: cell.Y}}
	}
	for i, r := range recs {
		img := r.img
		if img == nil {
			var err error
			if img, err = s.readBack(r.file); err != nil {
				return errors.Join(append(errs, fmt.Errorf("save: grid: %w", err))...)
			}
		}
		if sheet != nil {
			sheet.draw(i, img)
		}
		if anim != nil {
			p := toPaletted(img)
			if anim.Config.ColorModel == nil {
				anim.Config.ColorModel = p.Palette
			}
			anim.Image = append(anim.Image, p)
			anim.Delay = append(anim.Delay, s.anim.delay)
			anim.Disposal = append(anim.Disposal, gif.DisposalBackground)
		}
	}
	if sheet != nil {
		format, _ := extFormat(s.grid.file)
		var buf bytes.Buffer
		if err := encodeImage(&buf, sheet.canvas, format, s.quality); err != nil {
			errs = append(errs, fmt.Errorf("save: grid: %w", err))
		} else if err := s.putCollected(s.abs(s.grid.file), buf.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("save: grid: %w", err))
		}
	}
	if anim != nil {
		var buf bytes.Buffer
		if err := gif.EncodeAll(&buf, anim); err != nil {
			errs = append(errs, fmt.Errorf("save: animation: encode gif: %w", err))
		} else if err := s.putCollected(s.abs(s.anim.file), buf.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("save: animation: %w", err))
		}
	}
	return errors.Join(errs...)
}

// putCollected writes a grid or animation, replacing an earlier run's.
// One whose bytes equal the earlier run's file is left alone and counted
// unchanged: a rerun that adds nothing then writes nothing (--overwrite
// still rewrites it).
func (s *Saver) putCollected(file string, data []byte) error {
	if !s.opt.Overwrite && s.earlier(file) {
		if old, err := s.readFile(file); err == nil && bytes.Equal(old, data) {
			s.count(false)
			return nil
		}
	}
	wrote, err := s.put(file, data, true)
	if err == nil {
		s.count(wrote)
	}
	return err
}

// dedupe drops repeated records of one file (an item both reported Done
// and written), keeping the first.
func dedupe(recs []record) []record {
	seen := map[string]bool{}
	out := recs[:0]
	for _, r := range recs {
		if r.file != "" {
			if seen[r.file] {
				continue
			}
			seen[r.file] = true
		}
		out = append(out, r)
	}
	return out
}

// readFile reads a file of the save's dir, or its object.
func (s *Saver) readFile(file string) ([]byte, error) {
	if s.store != nil {
		return s.store.ReadAll(context.Background(), s.relOf(file))
	}
	return os.ReadFile(file)
}

func (s *Saver) decodeConfig(file string) (image.Config, error) {
	if s.store == nil {
		return decodeConfigFile(file)
	}
	data, err := s.readFile(file)
	if err != nil {
		return image.Config{}, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return image.Config{}, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, nil
}

func (s *Saver) readBack(file string) (image.Image, error) {
	if s.store == nil {
		return readBack(file)
	}
	data, err := s.readFile(file)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(file, ".gif") {
		g, err := gif.DecodeAll(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return g.Image[len(g.Image)-1], nil
	}
	return DecodeBytes(file, data, 0)
}

func decodeConfigFile(file string) (image.Config, error) {
	f, err := os.Open(file)
	if err != nil {
		return image.Config{}, fmt.Errorf("%s: %w", file, unwrapPath(err))
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return image.Config{}, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, nil
}

// readBack decodes a saved image; for an animated GIF (a sequence item) it
// returns the last frame, as the item's Image is.
func readBack(file string) (image.Image, error) {
	if strings.HasSuffix(file, ".gif") {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, unwrapPath(err))
		}
		defer f.Close()
		g, err := gif.DecodeAll(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return g.Image[len(g.Image)-1], nil
	}
	return DecodeFile(file, 0)
}
