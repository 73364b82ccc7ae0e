package stages

import (
	"image"
	"image/color"
	"image/draw"
)

// Grid lays imgs out as a contact sheet, row by row, columns wide, with
// padding pixels of bg between cells. Cells are the size of the largest
// image; smaller ones are centred in theirs. It is the layout of the save
// stage's grid, shared with the sample grids of training.
func Grid(imgs []image.Image, columns, padding int, bg color.Color) *image.NRGBA {
	cell := image.Point{}
	for _, img := range imgs {
		s := img.Bounds().Size()
		cell.X, cell.Y = max(cell.X, s.X), max(cell.Y, s.Y)
	}
	g := newGrid(len(imgs), columns, padding, cell, bg)
	for i, img := range imgs {
		g.draw(i, img)
	}
	return g.canvas
}

// grid is a contact sheet being drawn: len cells of size cell.
type grid struct {
	canvas *image.NRGBA
	cols   int
	pad    int
	cell   image.Point
}

func newGrid(n, columns, padding int, cell image.Point, bg color.Color) *grid {
	cols := max(1, min(columns, n))
	rows := max(1, (n+cols-1)/cols)
	g := &grid{cols: cols, pad: padding, cell: cell}
	g.canvas = image.NewNRGBA(image.Rect(0, 0, cols*cell.X+(cols-1)*padding, rows*cell.Y+(rows-1)*padding))
	draw.Draw(g.canvas, g.canvas.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	return g
}

// draw puts img centred in cell i, cropped to the cell.
func (g *grid) draw(i int, img image.Image) {
	b := img.Bounds()
	corner := image.Pt((i%g.cols)*(g.cell.X+g.pad), (i/g.cols)*(g.cell.Y+g.pad))
	at := corner.Add(g.cell.Sub(b.Size()).Div(2))
	r := image.Rectangle{at, at.Add(b.Size())}.Intersect(image.Rectangle{corner, corner.Add(g.cell)})
	draw.Draw(g.canvas, r, img, b.Min.Add(r.Min.Sub(at)), draw.Over)
}
