package stages

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/genpipe/genpipe/internal/typeset"
	"github.com/genpipe/genpipe/pipeline/blobstore"
	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

// Entry is one image found by a [Loader], before it is decoded.
type Entry struct {
	// Index is the position in the load order, from 0.
	Index int
	// Name identifies the image in output file names:
	//   - dir: the path relative to dir, slash-separated, without extension
	//     ("cats/tom"); when two files of one folder share a stem (a.png,
	//     a.jpg), the later ones keep their extension ("cats/a.png").
	//   - list: the path as listed, cleaned and without extension; leading
	//     "/" and "../" are dropped so the name stays inside a save dir.
	//   - idx: the record number, zero-padded to at least 5 digits ("00042").
	//   - typeset: the item number (start + position), padded the same way.
	Name string
	// Source is the file to read (the pipeline file's folder joined with the
	// configured path), for a dir given as a blob URL the object's URL
	// without the query ("s3://bucket/prefix/cats/tom.png"); for idx
	// records it is "file#N", for typeset digits "typeset:FACE#N".
	Source string
	// Label is the class label, -1 for none.
	Label int
	// Pixels holds an idx record's gray pixels (Width x Height, row-major);
	// nil for files, which are read by [Loader.Decode].
	Pixels        []byte
	Width, Height int
	// seq is a typeset item's number in its set (start + position).
	seq int
}

// Loader enumerates and decodes the images of one load stage.
type Loader struct {
	mode      string // "dir", "list" or "idx"
	root      string // resolved dir, list file or idx file
	labelPath string // resolved idx_labels file
	glob      *glob
	recursive bool
	labels    string
	limit     int
	maxPixels int
	classes   []string
	classIdx  map[string]int
	rows      int // idx and typeset only
	cols      int
	count     int
	typeset   *typesetSource
	// store holds the objects of a dir given as a blob URL (nil for a
	// folder); root is then the URL without its query.
	store *blobstore.Store
}

// CheckLoad checks the rules between fields that sdk.CheckParams cannot
// express. params are the values CheckParams returned for [LoadParam]
// (defaults filled in). Error paths are field names relative to the stage
// mapping ("" for the mapping itself).
func CheckLoad(params map[string]any) []*sdk.ParamError {
	p := Values(params)
	var errs []*sdk.ParamError
	add := func(path, format string, a ...any) *sdk.ParamError {
		e := &sdk.ParamError{Path: path, Msg: fmt.Sprintf(format, a...)}
		errs = append(errs, e)
		return e
	}
	var given []string
	for _, k := range []string{"dir", "list", "idx"} {
		if p.String(k) != "" {
			given = append(given, k)
		}
	}
	if _, ok := params["typeset"]; ok {
		given = append(given, "typeset")
		errs = append(errs, checkTypeset(params["typeset"])...)
	}
	switch len(given) {
	case 0:
		add("", "one of dir, list, idx or typeset is required")
	case 1:
	default:
		add(given[1], "%s and %s are both given; a load reads from exactly one of dir, list, idx or typeset", given[0], given[1])
	}
	labels := p.String("labels")
	switch labels {
	case "idx":
		if p.String("idx_labels") == "" {
			add("labels", "labels: idx needs idx_labels (the idx label file)")
		}
	case "folders":
		if p.String("dir") == "" {
			add("labels", "labels: folders needs dir (labels are its sub-folder names)")
		} else if b, ok := params["recursive"].(bool); ok && !b {
			add("recursive", "labels: folders needs recursive: true (the images are in sub-folders)")
		}
	}
	if p.String("idx_labels") != "" {
		if p.String("idx") == "" {
			add("idx_labels", "idx_labels is given without idx")
		} else if labels != "idx" {
			e := add("idx_labels", "idx_labels is given but labels is %q", labels)
			e.Hint = "set labels: idx"
		}
	}
	errs = append(errs, checkLoadURLs(p)...)
	if g, ok := params["glob"].(string); ok && p.String("dir") != "" {
		if _, err := compileGlob(g); err != nil {
			add("glob", "%v", err)
		}
	}
	return errs
}

// checkLoadURLs checks the URLs among a load's sources: dir may be a blob
// URL; list, idx and idx_labels may name a file by a file:// URL only
// (reading them from a bucket is not supported).
func checkLoadURLs(p Values) []*sdk.ParamError {
	var errs []*sdk.ParamError
	for _, k := range []string{"dir", "list", "idx", "idx_labels"} {
		s := p.String(k)
		if !blobstore.IsURL(s) {
			continue
		}
		_, err := blobstore.Parse(s)
		switch {
		case err != nil:
			errs = append(errs, &sdk.ParamError{Path: k, Msg: err.Error()})
		case k != "dir" && blobstore.IsBlob(s):
			errs = append(errs, &sdk.ParamError{Path: k, Msg: fmt.Sprintf("%s reads a local file; a blob URL (%s) is for dir only", k, s), Hint: "copy the file to a local folder, or load the images with dir: and glob:"})
		}
	}
	return errs
}

// NewLoader prepares a load stage from its validated params; relative paths
// resolve against baseDir (the pipeline file's folder). It checks that the
// source exists and, for idx, reads the headers (cheap); it reads no image.
func NewLoader(params map[string]any, baseDir string) (*Loader, error) {
	if errs := CheckLoad(params); len(errs) > 0 {
		return nil, fmt.Errorf("load: %w", joinParamErrors(errs))
	}
	return (&LoadConfig{Values: params}).Open(baseDir)
}

// LoadConfig is a load stage's checked configuration (see [ParseLoad]).
type LoadConfig struct {
	// Values are the validated parameters, defaults filled in.
	Values Values
}

// ParseLoad checks a load stage's validated values (what sdk.CheckParams
// returned for [LoadParam]): the rules between fields ([CheckLoad]) and,
// when env says so, that the files it names exist.
func ParseLoad(v any, env ParseEnv) (*LoadConfig, []*sdk.ParamError) {
	params, _ := v.(map[string]any)
	if env.Partial {
		return nil, nil // the rules between fields need every field valid
	}
	if errs := CheckLoad(params); len(errs) > 0 {
		return nil, errs
	}
	if errs := loadFiles(params, env); len(errs) > 0 {
		return nil, errs
	}
	return &LoadConfig{Values: params}, nil
}

// loadFiles checks that a load stage's sources exist.
func loadFiles(p Values, env ParseEnv) []*sdk.ParamError {
	if env.SkipFiles {
		return nil
	}
	var errs []*sdk.ParamError
	for _, k := range []string{"dir", "list", "idx", "idx_labels"} {
		name := p.String(k)
		if name == "" || blobstore.IsBlob(name) {
			continue // a bucket is looked at when the run opens it
		}
		fi, err := os.Stat(env.abs(blobstore.LocalPath(name)))
		what := "file"
		if k == "dir" {
			what = "folder"
		}
		switch {
		case err != nil:
			errs = append(errs, &sdk.ParamError{Path: k, Hint: RelHint, Msg: fmt.Sprintf("%s %q not found", what, name)})
		case k == "dir" && !fi.IsDir():
			errs = append(errs, &sdk.ParamError{Path: k, Msg: fmt.Sprintf("%q is a file, expected a folder", name)})
		case k != "dir" && fi.IsDir():
			errs = append(errs, &sdk.ParamError{Path: k, Msg: fmt.Sprintf("%q is a folder, expected a file", name)})
		}
	}
	_, faces, _, _, _, _ := typesetConfig(p["typeset"])
	for i, f := range faces {
		if !strings.ContainsAny(f, "./") {
			continue // a built-in face (checkTypeset knows the names)
		}
		if fi, err := os.Stat(env.abs(f)); err != nil || fi.IsDir() {
			errs = append(errs, &sdk.ParamError{Path: fmt.Sprintf("typeset.faces[%d]", i), Hint: RelHint, Msg: fmt.Sprintf("font file %q not found", f)})
		}
	}
	return errs
}

// Open prepares the load stage; relative paths resolve against baseDir.
func (c *LoadConfig) Open(baseDir string) (*Loader, error) {
	params := map[string]any(c.Values)
	p := c.Values
	resolve := func(s string) string {
		if blobstore.IsBlob(s) {
			return s
		}
		s = blobstore.LocalPath(s)
		if s == "" || filepath.IsAbs(s) {
			return s
		}
		return filepath.Join(baseDir, filepath.FromSlash(s))
	}
	l := &Loader{
		recursive: true,
		labels:    p.String("labels"),
		limit:     p.Int("limit"),
		maxPixels: p.Int("max_pixels"),
	}
	if b, ok := params["recursive"].(bool); ok {
		l.recursive = b
	}
	if l.labels == "" {
		l.labels = "none"
	}
	switch {
	case p.String("dir") != "":
		l.mode, l.root = "dir", resolve(p.String("dir"))
		if blobstore.IsBlob(l.root) {
			if err := l.openStore(); err != nil {
				return nil, err
			}
		}
		g := p.String("glob")
		if g == "" {
			g = "**"
		}
		var err error
		if l.glob, err = compileGlob(g); err != nil {
			return nil, fmt.Errorf("load: glob: %w", err)
		}
		if l.store != nil {
			if l.labels == "folders" {
				if err := l.readClasses(); err != nil {
					return nil, err
				}
			}
			break
		}
		st, err := os.Stat(l.root)
		if err != nil {
			return nil, fmt.Errorf("load: dir %s: %w", l.root, unwrapPath(err))
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("load: dir %s is a file, not a folder", l.root)
		}
		if l.labels == "folders" {
			if err := l.readClasses(); err != nil {
				return nil, err
			}
		}
	case p.String("list") != "":
		l.mode, l.root = "list", resolve(p.String("list"))
		st, err := os.Stat(l.root)
		if err != nil {
			return nil, fmt.Errorf("load: list %s: %w", l.root, unwrapPath(err))
		}
		if st.IsDir() {
			return nil, fmt.Errorf("load: list %s is a folder, expected a file with one path per line", l.root)
		}
	case params["typeset"] != nil:
		if err := l.openTypeset(params["typeset"], resolve); err != nil {
			return nil, err
		}
	default:
		l.mode, l.root = "idx", resolve(p.String("idx"))
		if l.labels == "idx" {
			l.labelPath = resolve(p.String("idx_labels"))
		}
		if err := l.readIdxHeaders(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func joinParamErrors(errs []*sdk.ParamError) error {
	es := make([]error, len(errs))
	for i, e := range errs {
		es[i] = e
	}
	return errors.Join(es...)
}

// openStore opens the bucket of a dir given as a blob URL: a missing
// bucket or refused credentials fail here, before anything is read.
func (l *Loader) openStore() error {
	loc, err := blobstore.Parse(l.root)
	if err != nil {
		return fmt.Errorf("load: dir: %w", err)
	}
	if l.store, err = blobstore.Open(context.Background(), loc); err != nil {
		return fmt.Errorf("load: dir: %w", err)
	}
	l.root = strings.TrimSuffix(l.store.URL(""), "/")
	return nil
}

// readClasses numbers dir's sub-folders (sorted, hidden ones skipped) from 0.
func (l *Loader) readClasses() error {
	var names []string
	if l.store != nil {
		var err error
		if names, err = l.store.Dirs(context.Background()); err != nil {
			return fmt.Errorf("load: dir: %w", err)
		}
	} else {
		ents, err := os.ReadDir(l.root)
		if err != nil {
			return fmt.Errorf("load: dir %s: %w", l.root, unwrapPath(err))
		}
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	l.classIdx = map[string]int{}
	for _, name := range names {
		if !strings.HasPrefix(name, ".") {
			l.classIdx[name] = len(l.classes)
			l.classes = append(l.classes, name)
		}
	}
	if len(l.classes) == 0 {
		return fmt.Errorf("load: dir %s has no sub-folders to take labels from (labels: folders)", l.root)
	}
	return nil
}

func (l *Loader) readIdxHeaders() error {
	img, err := openIdx(l.root, 3)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	img.Close()
	l.count, l.rows, l.cols = img.dims[0], img.dims[1], img.dims[2]
	if l.rows == 0 || l.cols == 0 {
		return fmt.Errorf("load: idx file %s: images are %dx%d, expected at least 1x1", l.root, l.cols, l.rows)
	}
	// Each dimension is a uint32, so the product is exact in uint64; in int
	// it can wrap negative and slip past the limit.
	if px := uint64(l.rows) * uint64(l.cols); l.maxPixels > 0 && px > uint64(l.maxPixels) {
		return fmt.Errorf("load: idx file %s: %dx%d is %d pixels, more than max_pixels %d", l.root, l.cols, l.rows, px, l.maxPixels)
	}
	if l.labelPath == "" {
		return nil
	}
	lab, err := openIdx(l.labelPath, 1)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	lab.Close()
	if lab.dims[0] != l.count {
		return fmt.Errorf("load: idx file %s has %d labels, but %s has %d images", l.labelPath, lab.dims[0], l.root, l.count)
	}
	return nil
}

// Classes returns the class names of labels: folders, label i being
// Classes()[i]; nil for other label sources.
func (l *Loader) Classes() []string { return l.classes }

// Output is the image spec the load produces as far as it is known before
// reading: 8-bit pixels; for idx also one channel and the record size.
func (l *Loader) Output() *sdk.ImageSpec {
	s := &sdk.ImageSpec{DType: sdk.Uint8, Min: 0, Max: 255}
	if l.mode == "idx" || l.mode == "typeset" {
		s.Channels, s.Height, s.Width = 1, l.rows, l.cols
	}
	return s
}

// errLimit stops a walk when limit entries were produced.
var errLimit = errors.New("limit reached")

// Enumerate calls fn for each image in load order (dir: a sorted walk, or
// the key order of a blob URL's objects; list: file order; idx: record
// order), stopping after limit entries, at the first
// error fn returns (which Enumerate returns unchanged) or when ctx is done.
// It never decodes an image, and it holds at most one folder listing, one
// page of a bucket listing, one list line or one idx record at a time.
func (l *Loader) Enumerate(ctx context.Context, fn func(Entry) error) error {
	n := 0
	emit := func(e Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.Index = n
		n++
		if err := fn(e); err != nil {
			return err
		}
		if l.limit > 0 && n >= l.limit {
			return errLimit
		}
		return nil
	}
	var err error
	switch l.mode {
	case "dir":
		err = l.walkDir(ctx, emit)
	case "list":
		err = l.readList(emit)
	case "idx":
		err = l.readIdx(emit)
	case "typeset":
		err = l.enumerateTypeset(emit)
	}
	if err == errLimit {
		return nil
	}
	return err
}

func (l *Loader) walkDir(ctx context.Context, emit func(Entry) error) error {
	// stems holds the stems used per folder, for the folders on the path to
	// the current one only (WalkDir may come back to a folder after one of
	// its sub-folders), so it stays as small as the folder depth.
	stems := map[string]map[string]bool{}
	return l.walk(ctx, func(p, rel string) error {
		dir, file := path.Split(rel)
		stem := strings.TrimSuffix(file, path.Ext(file))
		for k := range stems {
			if !strings.HasPrefix(dir, k) { // a finished folder
				delete(stems, k)
			}
		}
		used := stems[dir]
		if used == nil {
			used = map[string]bool{}
			stems[dir] = used
		}
		name := dir + stem
		if used[stem] {
			name = rel
		}
		used[stem] = true
		label := -1
		if l.labels == "folders" {
			if i := strings.IndexByte(rel, '/'); i > 0 {
				if c, ok := l.classIdx[rel[:i]]; ok {
					label = c
				}
			}
		}
		return emit(Entry{Name: name, Source: p, Label: label})
	})
}

// walk calls fn, in sorted order, for each file of dir the load reads:
// its path and its slash-separated path relative to dir. It stops when
// ctx is done, also in folders of files it skips.
func (l *Loader) walk(ctx context.Context, fn func(p, rel string) error) error {
	if l.store != nil {
		return l.walkStore(ctx, fn)
	}
	return filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			if errors.Is(err, errLimit) {
				return err
			}
			return fmt.Errorf("load: %s: %w", p, unwrapPath(err))
		}
		if p == l.root {
			return nil
		}
		hidden := strings.HasPrefix(d.Name(), ".")
		if d.IsDir() {
			if hidden || !l.recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if hidden || !isImageFile(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return fmt.Errorf("load: %s: %w", p, err)
		}
		rel = filepath.ToSlash(rel)
		if !l.glob.match(rel) {
			return nil
		}
		return fn(p, rel)
	})
}

// walkStore is walk for a dir given as a blob URL: the objects under its
// prefix, as the store lists them, page by page (nothing is collected),
// with the filters of a folder: hidden names (a key part starting with
// ".") skipped, sub-folders only when recursive, image extensions, glob.
// The order is the keys' byte order. It is the folder walk's order but
// where a folder's name is the start of a sibling's followed by a
// character below "/" (" !#$%&'()*+,-."): the walk reads "a/x.png"
// before "a.png", the listing after it. Putting it right would mean
// holding back a listing's worth of keys; names and labels are the same
// either way, only the indexes (and with them the seeds) differ.
func (l *Loader) walkStore(ctx context.Context, fn func(p, rel string) error) error {
	return l.store.List(ctx, l.recursive, func(rel string, _ int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(rel, ".") || strings.Contains(rel, "/.") || !isImageFile(rel) || !l.glob.match(rel) {
			return nil
		}
		return fn(l.store.URL(rel), rel)
	})
}

// Count returns the number of entries [Loader.Enumerate] emits, limit
// applied, without building them: it walks dir applying the same filters
// but reads no file, counts the list file's entries, or takes an idx
// file's count from its header. It holds no list of names, so a folder of
// millions of files costs the walk's time and nothing more.
func (l *Loader) Count(ctx context.Context) (int, error) {
	n := 0
	add := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n++
		if l.limit > 0 && n >= l.limit {
			return errLimit
		}
		return nil
	}
	var err error
	switch l.mode {
	case "dir":
		err = l.walk(ctx, func(string, string) error { return add() })
	case "list":
		err = l.readList(func(Entry) error { return add() })
	case "idx", "typeset":
		n = l.count
		if l.limit > 0 {
			n = min(n, l.limit)
		}
	}
	if err == errLimit {
		err = nil
	}
	return n, err
}

func (l *Loader) readList(emit func(Entry) error) error {
	f, err := os.Open(l.root)
	if err != nil {
		return fmt.Errorf("load: list %s: %w", l.root, unwrapPath(err))
	}
	defer f.Close()
	base := filepath.Dir(l.root)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := listEntry(sc.Text())
		if s == "" {
			continue
		}
		src := filepath.FromSlash(s)
		if !filepath.IsAbs(src) {
			src = filepath.Join(base, src)
		}
		if err := emit(Entry{Name: listName(s), Source: src, Label: -1}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("load: list %s: line %d: %w", l.root, line+1, err)
	}
	return nil
}

// listEntry strips a list line of blanks and of a comment: a "#" at the
// start of the line or after a blank (so "a#1.png" is still a file name).
func listEntry(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "#") {
		return ""
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			s = strings.TrimSpace(s[:i])
			break
		}
	}
	return s
}

// listName is the entry's name: the listed path, cleaned, slash-separated,
// without extension, with leading "/" and "../" dropped.
func listName(s string) string {
	s = path.Clean(filepath.ToSlash(s))
	if v := filepath.VolumeName(s); v != "" {
		s = s[len(v):]
	}
	for {
		switch {
		case strings.HasPrefix(s, "/"):
			s = s[1:]
		case strings.HasPrefix(s, "../"):
			s = s[3:]
		default:
			return strings.TrimSuffix(s, path.Ext(s))
		}
	}
}

func (l *Loader) readIdx(emit func(Entry) error) error {
	img, err := openIdx(l.root, 3)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer img.Close()
	var lab *idxFile
	if l.labelPath != "" {
		if lab, err = openIdx(l.labelPath, 1); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		defer lab.Close()
	}
	rows, cols := img.dims[1], img.dims[2]
	width := max(5, len(fmt.Sprint(img.dims[0]-1)))
	var lb [1]byte
	for i := 0; i < img.dims[0]; i++ {
		px := make([]byte, rows*cols)
		if err := img.read(px, i); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		label := -1
		if lab != nil {
			if err := lab.read(lb[:], i); err != nil {
				return fmt.Errorf("load: %w", err)
			}
			label = int(lb[0])
		}
		e := Entry{
			Name:   fmt.Sprintf("%0*d", width, i),
			Source: fmt.Sprintf("%s#%d", l.root, i),
			Label:  label,
			Pixels: px, Width: cols, Height: rows,
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}

// Decode reads the entry's image; errors name the file and say what is
// wrong with it (missing, empty, truncated, not an image, too many pixels).
func (l *Loader) Decode(e Entry) (image.Image, error) {
	if l.typeset != nil {
		return l.renderTypeset(e)
	}
	if e.Pixels != nil {
		if len(e.Pixels) != e.Width*e.Height {
			return nil, fmt.Errorf("load: %s: %d pixel bytes, expected %dx%d", e.Source, len(e.Pixels), e.Width, e.Height)
		}
		return &image.Gray{Pix: e.Pixels, Stride: e.Width, Rect: image.Rect(0, 0, e.Width, e.Height)}, nil
	}
	var img image.Image
	var err error
	if l.store != nil {
		img, err = l.decodeObject(e.Source)
	} else {
		img, err = DecodeFile(e.Source, l.maxPixels)
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return img, nil
}

// decodeObject reads and decodes the object whose URL is src.
func (l *Loader) decodeObject(src string) (image.Image, error) {
	rel, ok := strings.CutPrefix(src, l.store.URL(""))
	if !ok {
		return nil, fmt.Errorf("%s: not an object under %s", src, l.root)
	}
	data, err := l.store.ReadAll(context.Background(), rel)
	if err != nil {
		return nil, err
	}
	return DecodeBytes(src, data, l.maxPixels)
}

// Item decodes the entry and returns it as an item (Seed and Prov are the
// executor's to set).
func (l *Loader) Item(e Entry) (item.Item, error) {
	img, err := l.Decode(e)
	if err != nil {
		return item.Item{}, err
	}
	return item.Item{Index: e.Index, Name: e.Name, Source: e.Source, Label: e.Label, Image: img}, nil
}

// Image is what the planner can know of the images a load emits before
// reading any: idx records and typeset digits have one gray size (an idx
// file's from its header, a cheap read); folders and lists may hold any
// size, so their size is 0 (unknown). baseDir resolves relative paths;
// skipFiles leaves the files alone (the size of an idx is then unknown).
func (c *LoadConfig) Image(baseDir string, skipFiles bool) *sdk.ImageSpec {
	out := &sdk.ImageSpec{DType: sdk.Uint8, Min: 0, Max: 255}
	switch {
	case c == nil:
	case c.Values["typeset"] != nil:
		out.Channels, out.Width, out.Height = 1, typeset.Size, typeset.Size
	case c.Values.String("idx") != "" && !skipFiles:
		path := c.Values.String("idx")
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		if x, err := openIdx(path, 3); err == nil {
			x.Close()
			out.Channels, out.Height, out.Width = 1, x.dims[1], x.dims[2]
		}
	}
	return out
}
