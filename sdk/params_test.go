package sdk

import (
	"reflect"
	"strings"
	"testing"
)

var testSpecs = []Param{
	{Name: "method", Type: String, Default: "canny", Enum: []string{"canny", "sobel"}},
	{Name: "sigma", Type: Float, Default: 1.0, Min: Bound(0), Max: Bound(10)},
	{Name: "steps", Type: Int, Default: 4, Min: Bound(1)},
	{Name: "invert", Type: Bool, Default: false},
	{Name: "labels", Type: List, Elem: &Param{Type: Int, Min: Bound(0), Max: Bound(9)}, Enum: []string{"each"}},
	{Name: "name", Type: String, Required: true},
	{Name: "ops", Type: List, Elem: &Param{Type: Object, OneOf: true, Fields: []Param{
		{Name: "blur", Type: Object, Fields: []Param{{Name: "sigma", Type: Float, Required: true}}},
		{Name: "grayscale", Type: Object},
	}}},
}

func TestCheckParams(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want Params
		errs []string
	}{
		{"defaults", map[string]any{"name": "x"},
			Params{"method": "canny", "sigma": 1.0, "steps": 4, "invert": false, "name": "x"}, nil},
		{"ints become floats and back", map[string]any{"name": "x", "sigma": 2, "steps": 3.0},
			Params{"method": "canny", "sigma": 2.0, "steps": 3, "invert": false, "name": "x"}, nil},
		{"single value is a list", map[string]any{"name": "x", "labels": 3},
			Params{"method": "canny", "sigma": 1.0, "steps": 4, "invert": false, "name": "x", "labels": []any{3}}, nil},
		{"list special value", map[string]any{"name": "x", "labels": "each"},
			Params{"method": "canny", "sigma": 1.0, "steps": 4, "invert": false, "name": "x", "labels": "each"}, nil},
		{"ops", map[string]any{"name": "x", "ops": []any{"grayscale", map[string]any{"blur": map[string]any{"sigma": 1}}}},
			Params{"method": "canny", "sigma": 1.0, "steps": 4, "invert": false, "name": "x",
				"ops": []any{map[string]any{"grayscale": map[string]any{}}, map[string]any{"blur": map[string]any{"sigma": 1.0}}}}, nil},
		{"every error at once", map[string]any{"methd": "canny", "sigma": 11, "steps": 1.5, "invert": "yes", "labels": []any{1, 12}, "ops": []any{map[string]any{"blur": map[string]any{}, "grayscale": nil}}},
			nil, []string{
				`invert: expected bool, got string "yes"`,
				`labels[1]: 12 is out of range [0, 9]`,
				`methd: unknown parameter "methd" (did you mean "method"?)`,
				`ops[0]: expected exactly one of blur, grayscale, got 2 keys`,
				`sigma: 11 is out of range [0, 10]`,
				`steps: expected int, got 1.5`,
				`name: missing required parameter "name" (string)`,
			}},
		{"enum with hint", map[string]any{"name": "x", "method": "cany"}, nil, []string{`method: "cany" is not one of canny, sobel (did you mean "canny"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := CheckParams(testSpecs, tt.in, "")
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if strings.Join(msgs, "\n") != strings.Join(tt.errs, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(tt.errs, "\n"))
			}
			if tt.errs == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestTensor(t *testing.T) {
	a := FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 3, 2)
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	b := a.Slice(1, 3)
	if got := b.Float32s(); !reflect.DeepEqual(got, []float32{3, 4, 5, 6}) || b.Len() != 2 {
		t.Fatalf("slice = %v", got)
	}
	c, err := Concat(a.Slice(0, 1), b)
	if err != nil || !reflect.DeepEqual(c.Float32s(), a.Float32s()) {
		t.Fatalf("concat = %v, %v", c, err)
	}
	if _, err := Concat(a, FromFloat32([]float32{1, 2, 3}, 1, 3)); err == nil {
		t.Fatal("concat of mismatched shapes must fail")
	}
	bad := &Tensor{Shape: []int{2, 2}, DType: Uint8, Data: []byte{1, 2, 3}}
	if err := bad.Check(); err == nil || !strings.Contains(err.Error(), "needs 4 bytes, got 3") {
		t.Fatalf("check = %v", err)
	}
}

func TestParamsGetters(t *testing.T) {
	p := Params{"s": "x", "i": 3, "f": 1.5, "fi": 2, "b": true, "l": []any{1, 2}, "each": "each"}
	if p.String("s") != "x" || p.Int("i") != 3 || p.Float("f") != 1.5 || p.Float("fi") != 2 || !p.Bool("b") ||
		!reflect.DeepEqual(p.Ints("l"), []int{1, 2}) || p.Ints("each") != nil {
		t.Fatalf("getters read %v wrong", p)
	}
	if !p.Has("s") || p.Has("nope") {
		t.Fatal("Has")
	}
	if v, ok := p.Lookup("i"); !ok || v != 3 {
		t.Fatalf("Lookup(i) = %v, %v", v, ok)
	}
	if v, ok := p.Lookup("nope"); ok || v != nil {
		t.Fatalf("Lookup(nope) = %v, %v", v, ok)
	}
	for name, get := range map[string]func(){
		"String": func() { p.String("lr") },
		"Int":    func() { p.Int("lr") },
		"Float":  func() { p.Float("lr") },
		"Bool":   func() { p.Bool("lr") },
		"Ints":   func() { p.Ints("lr") },
	} {
		func() {
			defer func() {
				r := recover()
				want := `sdk: Params.` + name + `("lr"): no such parameter`
				if s, _ := r.(string); !strings.HasPrefix(s, want) {
					t.Errorf("%s of an undeclared name: recovered %v, want a panic starting %q", name, r, want)
				}
			}()
			get()
		}()
	}
}

func TestCheckParamsPatternAndFormat(t *testing.T) {
	specs := []Param{
		{Name: "fill", Type: String, Format: FormatColor},
		{Name: "every", Type: String, Format: FormatDuration},
		{Name: "tag", Type: String, Pattern: `[a-z]+|[0-9]+`},
		{Name: "tags", Type: List, Elem: &Param{Type: String, Pattern: `v[0-9]`}},
	}
	tests := []struct {
		in   map[string]any
		errs []string
	}{
		{map[string]any{"fill": "#fff", "every": "1m30s", "tag": "abc", "tags": []any{"v1", "v2"}}, nil},
		{map[string]any{"fill": "#A0b0C0", "tag": "42"}, nil},
		{map[string]any{"fill": "red"}, []string{`fill: expected a color (#rgb or #rrggbb), got "red"`}},
		{map[string]any{"fill": "#abcd"}, []string{`fill: expected a color (#rgb or #rrggbb), got "#abcd"`}},
		{map[string]any{"every": "10"}, []string{`every: expected a duration (such as "300ms", "1.5s" or "2h45m"), got "10"`}},
		// Anchored: a match inside the value is not enough, and the
		// alternation is grouped before anchoring.
		{map[string]any{"tag": "abc1"}, []string{`tag: expected a string matching [a-z]+|[0-9]+, got "abc1"`}},
		{map[string]any{"tags": []any{"v1", "xv2"}}, []string{`tags[1]: expected a string matching v[0-9], got "xv2"`}},
	}
	for _, tt := range tests {
		_, errs := CheckParams(specs, tt.in, "")
		var got []string
		for _, e := range errs {
			got = append(got, e.Error())
		}
		if !reflect.DeepEqual(got, tt.errs) {
			t.Errorf("%v: errors %q, want %q", tt.in, got, tt.errs)
		}
	}
}

func TestOutSize(t *testing.T) {
	tests := []struct {
		spec       ImageSpec
		inH, inW   int
		wantH, wnt int
	}{
		{ImageSpec{}, 14, 20, 14, 20},                                 // old plugins: 0 is the input's
		{ImageSpec{Height: 28, Width: 28}, 14, 20, 28, 28},            // old plugins: given is fixed
		{ImageSpec{Height: 28}, 14, 20, 28, 20},                       // old mixed form, per dimension
		{ImageSpec{Size: SameSize}, 14, 20, 14, 20},                   //
		{ImageSpec{Size: ScaleSize(2, 1)}, 14, 20, 28, 40},            //
		{ImageSpec{Size: ScaleSize(1, 2)}, 15, 20, 7, 10},             // rounded down
		{ImageSpec{Size: ScaleSize(3, 2)}, 14, 0, 21, 0},              // unknown stays unknown
		{ImageSpec{Size: AnySize}, 14, 20, 0, 0},                      //
		{ImageSpec{Height: 8, Width: 9, Size: FixedSize}, 0, 0, 8, 9}, //
	}
	for _, tt := range tests {
		h, w := tt.spec.OutSize(tt.inH, tt.inW)
		if h != tt.wantH || w != tt.wnt {
			t.Errorf("%+v.OutSize(%d, %d) = %d, %d, want %d, %d", tt.spec, tt.inH, tt.inW, h, w, tt.wantH, tt.wnt)
		}
	}
	if err := (&ImageSpec{Size: ScaleSize(2, 1)}).CheckOutSize(14, 14, 14, 14); err == nil ||
		err.Error() != "output is 14x14 for a 14x14 input (WxH), expected 28x28: the preset declares output size scale x2" {
		t.Errorf("CheckOutSize: %v", err)
	}
	if err := (&ImageSpec{Height: 28, Width: 28}).CheckOutSize(0, 0, 14, 28); err == nil ||
		err.Error() != "output is 28x14 (WxH), expected 28x28: the preset declares output size fixed 28x28" {
		t.Errorf("CheckOutSize of a generated image: %v", err)
	}
	if err := (&ImageSpec{Size: AnySize}).CheckOutSize(14, 14, 3, 5); err != nil {
		t.Errorf("CheckOutSize of any: %v", err)
	}
}
