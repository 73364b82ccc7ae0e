// Package stages owns the stage kinds: the registry ([Kind], one entry per
// kind, host and model alike) where each kind declares its parameters once,
// the typed configs host stages are parsed into once by the planner, the
// host stages themselves (load, the preprocess ops table, save), and the
// adapters that run them in the executor (pipeline/run). Parameters are
// declared with the same [sdk.Param] specs as plugin parameters, so the
// planner validates them, and docs and the JSON Schema come from the same
// place. A new preprocess op is one file that registers itself.
package stages

import "github.com/genpipe/genpipe/sdk"

var (
	filters = []string{"lanczos", "catmullrom", "linear", "box", "nearest"}
	anchors = []string{"center", "top-left", "top", "top-right", "left", "right", "bottom-left", "bottom", "bottom-right"}
)

func dim(name, doc string) sdk.Param {
	return sdk.Param{Name: name, Type: sdk.Int, Doc: doc, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(65536)}
}

func filter() sdk.Param {
	return sdk.Param{Name: "filter", Type: sdk.String, Doc: "resampling filter", Default: "lanczos", Enum: filters}
}

// LoadParam is the spec of a load stage's mapping. Exactly one of dir, list
// and idx names the source (checked by [CheckLoad]).
var LoadParam = sdk.Param{Name: "load", Type: sdk.Object, Doc: "read images from a folder, a list file or MNIST-format idx files, or render typeset digits", Fields: []sdk.Param{
	{Name: "dir", Type: sdk.String, Doc: "folder to read images from (relative to the pipeline file), or a blob URL: s3://BUCKET/PREFIX?endpoint=...&region=..., gs://, azblob://, file:///abs/path"},
	{Name: "glob", Type: sdk.String, Doc: "pattern matched against each file's path relative to dir; ** matches across folders; a pattern without / matches file names in any folder (only files with an image extension are read, hidden ones skipped)", Default: "**"},
	{Name: "recursive", Type: sdk.Bool, Doc: "descend into sub-folders of dir", Default: true},
	{Name: "list", Type: sdk.String, Doc: "file with one image path per line (relative to the list file); # starts a comment"},
	{Name: "idx", Type: sdk.String, Doc: "MNIST-format idx image file (.idx or .idx.gz, e.g. t10k-images-idx3-ubyte.gz)"},
	{Name: "idx_labels", Type: sdk.String, Doc: "MNIST-format idx label file matching idx"},
	typesetParam,
	{Name: "labels", Type: sdk.String, Doc: "where labels come from: none, folders (the sub-folder name, sorted, numbered from 0) or idx", Default: "none", Enum: []string{"none", "folders", "idx"}},
	{Name: "limit", Type: sdk.Int, Doc: "read at most this many images (0: all)", Default: 0, Min: sdk.Bound(0)},
	{Name: "max_pixels", Type: sdk.Int, Doc: "refuse images with more pixels than this (decompression-bomb guard)", Default: 100_000_000, Min: sdk.Bound(1)},
}}

// SaveParam is the spec of a save stage's mapping.
var SaveParam = sdk.Param{Name: "save", Type: sdk.Object, Doc: "write images (and optionally a grid and an animation) to a folder", Fields: []sdk.Param{
	{Name: "dir", Type: sdk.String, Doc: "output folder (relative to the pipeline file), or a blob URL: s3://BUCKET/PREFIX?endpoint=...&region=..., gs://, azblob://, file:///abs/path", Required: true},
	{Name: "format", Type: sdk.String, Doc: "image file format", Default: "png", Enum: []string{"png", "jpeg", "gif"}},
	{Name: "name", Type: sdk.String, Doc: "file-name template without extension: {name}, {index}, {index:05} (zero-padded), {label} (none when unlabelled), {stage} (the stage that made the item; a save with several inputs needs it, or another field that tells them apart); may contain / for sub-folders; items with frames are saved as animated .gif", Default: "{name}"},
	{Name: "quality", Type: sdk.Int, Doc: "JPEG quality", Default: 95, Min: sdk.Bound(1), Max: sdk.Bound(100)},
	{Name: "images", Type: sdk.Bool, Doc: "write one file per item (false: only the grid/animation)", Default: true},
	{Name: "provenance", Type: sdk.String, Doc: "where to record how each image was made: sidecar (name.json), png (text chunk), none", Default: "sidecar", Enum: []string{"sidecar", "png", "none"}},
	{Name: "manifest", Type: sdk.String, Doc: "also write one manifest of the folder, manifest.jsonl or manifest.csv: a line per saved image with its name (path in dir), index, source, label and every score stages attached; complete after an interrupted and resumed run", Enum: []string{"jsonl", "csv"}},
	{Name: "grid", Type: sdk.Object, Doc: "also write a contact sheet of all items in index order", Fields: []sdk.Param{
		{Name: "columns", Type: sdk.Int, Doc: "images per row", Default: 8, Min: sdk.Bound(1), Max: sdk.Bound(1024)},
		{Name: "file", Type: sdk.String, Doc: "file name inside dir", Default: "grid.png"},
		{Name: "padding", Type: sdk.Int, Doc: "pixels between cells", Default: 2, Min: sdk.Bound(0), Max: sdk.Bound(256)},
		{Name: "background", Type: sdk.String, Doc: "padding colour, #rrggbb", Default: "#ffffff"}}},
	{Name: "animation", Type: sdk.Object, Doc: "also write all items, in index order, as frames of one animated GIF", Fields: []sdk.Param{
		{Name: "file", Type: sdk.String, Doc: "file name inside dir", Default: "animation.gif"},
		{Name: "delay", Type: sdk.Int, Doc: "delay between frames in 1/100 s", Default: 10, Min: sdk.Bound(1), Max: sdk.Bound(6000)},
		{Name: "loop", Type: sdk.Int, Doc: "0 loops forever, -1 plays once, n repeats n times", Default: 0, Min: sdk.Bound(-1)}}},
}}
