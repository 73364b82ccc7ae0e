// Package stages implements the host-side stages: load, preprocess and save.
// They are declared with the same [sdk.Param] specs as plugin parameters, so
// the planner validates them, and docs and JSON Schema come from the same place.
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
var LoadParam = sdk.Param{Name: "load", Type: sdk.Object, Doc: "read images from a folder, a list file, or MNIST-format idx files", Fields: []sdk.Param{
	{Name: "dir", Type: sdk.String, Doc: "folder to read images from (relative to the pipeline file)"},
	{Name: "glob", Type: sdk.String, Doc: "pattern matched against each file's path relative to dir; ** matches across folders; a pattern without / matches file names in any folder (only files with an image extension are read, hidden ones skipped)", Default: "**"},
	{Name: "recursive", Type: sdk.Bool, Doc: "descend into sub-folders of dir", Default: true},
	{Name: "list", Type: sdk.String, Doc: "file with one image path per line (relative to the list file); # starts a comment"},
	{Name: "idx", Type: sdk.String, Doc: "MNIST-format idx image file (.idx or .idx.gz, e.g. t10k-images-idx3-ubyte.gz)"},
	{Name: "idx_labels", Type: sdk.String, Doc: "MNIST-format idx label file matching idx"},
	{Name: "labels", Type: sdk.String, Doc: "where labels come from: none, folders (the sub-folder name, sorted, numbered from 0) or idx", Default: "none", Enum: []string{"none", "folders", "idx"}},
	{Name: "limit", Type: sdk.Int, Doc: "read at most this many images (0: all)", Default: 0, Min: sdk.Bound(0)},
	{Name: "max_pixels", Type: sdk.Int, Doc: "refuse images with more pixels than this (decompression-bomb guard)", Default: 100_000_000, Min: sdk.Bound(1)},
}}

// PreprocessParam is the spec of a preprocess stage: a list of operations
// applied in order, each a mapping with one key.
var PreprocessParam = sdk.Param{Name: "preprocess", Type: sdk.List, Doc: "image operations applied in order", Elem: &sdk.Param{Name: "op", Type: sdk.Object, OneOf: true, Fields: []sdk.Param{
	{Name: "resize", Type: sdk.Object, Doc: "resize to width x height (0 for one of them keeps the aspect ratio)", Fields: []sdk.Param{dim("width", "target width"), dim("height", "target height"), filter()}},
	{Name: "fit", Type: sdk.Object, Doc: "scale down to fit within width x height, keeping the aspect ratio", Fields: []sdk.Param{dim("width", "box width"), dim("height", "box height"), filter()}},
	{Name: "fill", Type: sdk.Object, Doc: "scale and crop to exactly width x height", Fields: []sdk.Param{dim("width", "target width"), dim("height", "target height"), filter(),
		{Name: "anchor", Type: sdk.String, Doc: "which part to keep when cropping", Default: "center", Enum: anchors}}},
	{Name: "crop", Type: sdk.Object, Doc: "cut a width x height region at the anchor", Fields: []sdk.Param{dim("width", "region width"), dim("height", "region height"),
		{Name: "anchor", Type: sdk.String, Doc: "where the region sits", Default: "center", Enum: anchors}}},
	{Name: "grayscale", Type: sdk.Object, Doc: "convert to one gray channel"},
	{Name: "invert", Type: sdk.Object, Doc: "invert the colours"},
	{Name: "flip", Type: sdk.Object, Doc: "mirror the image", Fields: []sdk.Param{
		{Name: "direction", Type: sdk.String, Doc: "mirror axis", Default: "horizontal", Enum: []string{"horizontal", "vertical"}}}},
	{Name: "rotate", Type: sdk.Object, Doc: "rotate counter-clockwise by angle degrees; the canvas grows to fit", Fields: []sdk.Param{
		{Name: "angle", Type: sdk.Float, Doc: "degrees, counter-clockwise", Required: true, Min: sdk.Bound(-360), Max: sdk.Bound(360)},
		{Name: "background", Type: sdk.String, Doc: "fill colour for uncovered corners, #rrggbb", Default: "#000000"}}},
	{Name: "blur", Type: sdk.Object, Doc: "Gaussian blur", Fields: []sdk.Param{
		{Name: "sigma", Type: sdk.Float, Doc: "standard deviation in pixels", Required: true, Min: sdk.Bound(0.01), Max: sdk.Bound(100)}}},
	{Name: "sharpen", Type: sdk.Object, Doc: "unsharp mask", Fields: []sdk.Param{
		{Name: "sigma", Type: sdk.Float, Doc: "standard deviation in pixels", Required: true, Min: sdk.Bound(0.01), Max: sdk.Bound(100)}}},
	{Name: "brightness", Type: sdk.Object, Doc: "change brightness", Fields: []sdk.Param{
		{Name: "percent", Type: sdk.Float, Doc: "-100 (black) to 100 (white)", Required: true, Min: sdk.Bound(-100), Max: sdk.Bound(100)}}},
	{Name: "contrast", Type: sdk.Object, Doc: "change contrast", Fields: []sdk.Param{
		{Name: "percent", Type: sdk.Float, Doc: "-100 (flat gray) to 100", Required: true, Min: sdk.Bound(-100), Max: sdk.Bound(100)}}},
	{Name: "gamma", Type: sdk.Object, Doc: "gamma correction (below 1 darkens, above 1 brightens)", Fields: []sdk.Param{
		{Name: "gamma", Type: sdk.Float, Doc: "gamma value", Required: true, Min: sdk.Bound(0.01), Max: sdk.Bound(10)}}},
	{Name: "noise", Type: sdk.Object, Doc: "add seeded noise (e.g. to make inputs for a denoiser)", Fields: []sdk.Param{
		{Name: "type", Type: sdk.String, Doc: "gaussian: N(0, amount) on [0,1] pixels; salt_pepper: fraction amount of pixels set to black or white", Default: "gaussian", Enum: []string{"gaussian", "salt_pepper"}},
		{Name: "amount", Type: sdk.Float, Doc: "standard deviation (gaussian) or fraction of pixels (salt_pepper)", Default: 0.1, Min: sdk.Bound(0), Max: sdk.Bound(1)}}},
	{Name: "conform", Type: sdk.Object, Doc: "convert to the size and channels the consuming model declares", Fields: []sdk.Param{
		{Name: "mode", Type: sdk.String, Doc: "how to reach the declared size: fill scales and crops, resize stretches, fit scales to fit and pads with black", Default: "fill", Enum: []string{"resize", "fit", "fill"}}, filter()}},
}}}

// SaveParam is the spec of a save stage's mapping.
var SaveParam = sdk.Param{Name: "save", Type: sdk.Object, Doc: "write images (and optionally a grid and an animation) to a folder", Fields: []sdk.Param{
	{Name: "dir", Type: sdk.String, Doc: "output folder (relative to the pipeline file)", Required: true},
	{Name: "format", Type: sdk.String, Doc: "image file format", Default: "png", Enum: []string{"png", "jpeg", "gif"}},
	{Name: "name", Type: sdk.String, Doc: "file-name template without extension: {name}, {index}, {index:05} (zero-padded), {label} (none when unlabelled), {stage} (the stage that made the item); may contain / for sub-folders; items with frames are saved as animated .gif", Default: "{name}"},
	{Name: "quality", Type: sdk.Int, Doc: "JPEG quality", Default: 95, Min: sdk.Bound(1), Max: sdk.Bound(100)},
	{Name: "images", Type: sdk.Bool, Doc: "write one file per item (false: only the grid/animation)", Default: true},
	{Name: "provenance", Type: sdk.String, Doc: "where to record how each image was made: sidecar (name.json), png (text chunk), none", Default: "sidecar", Enum: []string{"sidecar", "png", "none"}},
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
