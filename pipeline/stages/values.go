package stages

// Values reads the checked parameters of a host stage (load, preprocess,
// save) or of a pipeline's host-side keys (a model stage's model, batch,
// labels; the train section). Unlike [sdk.Params], whose getters panic on a
// name that has no value, a Values getter reads an absent name as the zero
// value: these keys are optional without a default (absence means "not
// set"), and the planner reads them while it collects every error, so even
// a required key may be missing.
type Values map[string]any

// String returns the string value of name ("" if absent or not a string).
func (v Values) String(name string) string { s, _ := v[name].(string); return s }

// Int returns the int value of name (0 if absent or not an int).
func (v Values) Int(name string) int { i, _ := v[name].(int); return i }

// Float returns the number value of name as a float64 (0 if absent or not a
// number).
func (v Values) Float(name string) float64 {
	switch x := v[name].(type) {
	case float64:
		return x
	case int:
		return float64(x)
	}
	return 0
}

// Bool returns the bool value of name (false if absent or not a bool).
func (v Values) Bool(name string) bool { b, _ := v[name].(bool); return b }

// Ints returns the list-of-int value of name (nil if absent or not a list
// of ints).
func (v Values) Ints(name string) []int {
	l, _ := v[name].([]any)
	var out []int
	for _, e := range l {
		i, ok := e.(int)
		if !ok {
			return nil
		}
		out = append(out, i)
	}
	return out
}
